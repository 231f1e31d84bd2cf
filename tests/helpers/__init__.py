"""What several tests share that is not a fixture: a tiny training run, a W&B log reader, an interrupting callback, a
recognised page built by hand."""
