"""``python -m kuzu_lightning``: the ``kuzu`` command (:mod:`kuzu_lightning.tools.kuzu`)."""

from kuzu_lightning.tools.kuzu import main

if __name__ == "__main__":
    raise SystemExit(main())
