"""Check a zh_Hans .po file: every entry translated, none fuzzy, no python-format
flag on a string that is no format (msgfmt --check would reject its translation).

    python scripts/i18n_check.py EXTRACTED.po [COMMITTED.po]

With COMMITTED, also fail when the code has strings the committed file lacked
(scripts/i18n was not run after a string changed). Exit 1 with the list."""

from __future__ import annotations

import sys

import polib


def main(extracted: str, committed: str | None = None) -> int:
    po = polib.pofile(extracted)
    for entry in po.obsolete_entries():  # strings no longer in the code
        po.remove(entry)
    for entry in po:
        if "python-format" in entry.flags and "%(" not in entry.msgid and "%s" not in entry.msgid:
            entry.flags.remove("python-format")
    po.save()
    problems = [f"untranslated: {entry.msgid}" for entry in po.untranslated_entries()]
    problems += [f"fuzzy (check the translation, then drop the flag): {entry.msgid}" for entry in po.fuzzy_entries()]
    if committed:
        known = {entry.msgid for entry in polib.pofile(committed) if not entry.obsolete}
        problems += [f"not in the committed .po (run scripts/i18n): {entry.msgid}" for entry in po if entry.msgid not in known]
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problems in {extracted}: translate them there (the .po is the one source)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
