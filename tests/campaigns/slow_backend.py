"""A file sink that writes one message at a time, slowly: a worker can be killed in the middle of a batch."""

import os
import time

from campaigns.backends import SENT, FileBackend, SendResult


class SlowFileBackend(FileBackend):
    def send_messages(self, messages):
        results = []
        for message in messages:
            FileBackend.send_messages(self, [message])
            results.append(SendResult(SENT, provider_id=f"slow-{message.delivery_id}"))
            time.sleep(float(os.environ.get("SLOW_BACKEND_DELAY", "0.01")))
        return results
