"""The commands' implementations, one module each, apart from the library they drive: ``kuzu`` (:mod:`.kuzu`) runs
them as subcommands. Nothing in the library imports from here."""
