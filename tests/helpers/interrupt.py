"""A callback that interrupts its own training process at a given optimizer step, as a crash or Ctrl-C would.

Used by the resume tests through ``--config`` (``class_path: interrupt.InterruptAt``, with ``tests/`` on
``PYTHONPATH``): ``SIGKILL`` ends the process at once, ``SIGINT`` is Lightning's graceful shutdown.
"""

import os
import signal

import lightning as L


class InterruptAt(L.Callback):
    def __init__(self, step: int, signal_name: str = "SIGKILL"):
        self.step, self.signal = step, getattr(signal, signal_name)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            if self.signal == signal.SIGINT:  # Python's Ctrl-C handler, as in a terminal: a process started in the
                signal.signal(signal.SIGINT, signal.default_int_handler)  # background inherits SIGINT ignored
            os.kill(os.getpid(), self.signal)
