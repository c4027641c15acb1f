"""Masking of personal data on screens (GB/T 35273 §7.2), done server-side."""


def mask_mobile(mobile: str) -> str:
    """138****1234 for an 11-digit number; anything shorter shows only its last two digits."""
    if not mobile:
        return ""
    if len(mobile) == 11:
        return f"{mobile[:3]}****{mobile[-4:]}"
    return "*" * max(len(mobile) - 2, 0) + mobile[-2:]
