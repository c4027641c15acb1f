"""The Chinese .po file is the one source of the translations: every entry is
translated and reviewed (none fuzzy), and the compiled .mo the server reads
says the same. (scripts/i18n --check, in CI, also re-extracts the code's strings.)"""

from pathlib import Path

import polib

LOCALE = Path(__file__).resolve().parent.parent / "crm" / "locale" / "zh_Hans" / "LC_MESSAGES"


def test_every_chinese_entry_is_translated_and_reviewed():
    po = polib.pofile(str(LOCALE / "django.po"))
    assert [entry.msgid for entry in po.untranslated_entries()] == []
    assert [entry.msgid for entry in po.fuzzy_entries()] == []
    assert len(po.translated_entries()) > 1000


def test_the_compiled_file_says_what_the_po_says():
    # By context and text: the same word may read differently in two places ("from": 从, and a coupon's 来源).
    po = {(entry.msgctxt, entry.msgid): entry.msgstr for entry in polib.pofile(str(LOCALE / "django.po")).translated_entries() if not entry.msgid_plural}
    mo = {(entry.msgctxt, entry.msgid): entry.msgstr for entry in polib.mofile(str(LOCALE / "django.mo")) if not entry.msgid_plural and entry.msgid}
    assert {key: text for key, text in po.items() if mo.get(key) != text} == {}
