# Installed by the mailman_core role (mailstack); Mailman loads these classes through the
# `class:` of its [runner.NAME] sections in /etc/mailman3/mailman.cfg.
"""Mailman's queue runners, made steady for a site whose database is on another host.

Mailman 3.3.8's runners have two habits that lose or copy mail on a busy site:

* A stop signal raises an exception wherever the runner is, to cut its sleep short. If the runner
  is working on a message then, the exception reaches the runner's catch-all and the message goes
  to the shunt queue, whether or not it was sent already (`systemctl restart mailman3` during a
  fan-out). Here a signal that comes while the runner works only asks it to stop: it finishes
  the message in hand and then stops; only a sleeping runner is woken by the exception.
* A runner that meets the database down shunts the message it took (the list lookup fails) or,
  in its periodic work (the bounces and task runners), dies, and Mailman's master does not start
  it again. Here a runner looks whether the database answers before it takes a message from its
  queue (and again after each message): if not, the messages stay queued and the runner waits for
  its next pass; periodic work that meets the database down is given up until the next pass. The
  messages are taken, in their order, once the database answers.

* A runner with an empty queue sleeps `sleep_time` (Mailman's default 1 s) before it looks again,
  so a post waits up to that long at each runner on its path (in, pipeline, out): about 2 s for a
  small list, and a shorter sleep costs CPU all day. Here a runner waits on its queue directory
  instead (inotify: the switchboard queues a message by renaming it into the directory), so it
  wakes as soon as a message comes, and still looks at least every `sleep_time`.

The classes are Mailman's own runners with these changes and nothing else.
"""

import ctypes
import ctypes.util
import logging
import os
import select
import signal

from mailman.config import config
from mailman.interfaces.runner import RunnerInterrupt
from mailman.runners.archive import ArchiveRunner as _Archive
from mailman.runners.bounce import BounceRunner as _Bounce
from mailman.runners.command import CommandRunner as _Command
from mailman.runners.digest import DigestRunner as _Digest
from mailman.runners.incoming import IncomingRunner as _Incoming
from mailman.runners.nntp import NNTPRunner as _NNTP
from mailman.runners.outgoing import OutgoingRunner as _Outgoing
from mailman.runners.pipeline import PipelineRunner as _Pipeline
from mailman.runners.retry import RetryRunner as _Retry
from mailman.runners.task import TaskRunner as _Task
from mailman.runners.virgin import VirginRunner as _Virgin
from sqlalchemy import exc, text

elog = logging.getLogger("mailman.error")
rlog = logging.getLogger("mailman.runner")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
# What SQLAlchemy raises when the server cannot be reached or went away (psycopg2's
# OperationalError: refused, shutting down, starting up, connection lost; InterfaceError:
# connection already closed).
UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)
IN_MOVED_TO = 0x80  # <sys/inotify.h>: a file was renamed into the watched directory


def queue_watch(directory):
    """A non-blocking inotify descriptor that turns readable when a file is renamed into `directory`
    (a switchboard's last step in queuing a message), or None where inotify cannot be had."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(directory), IN_MOVED_TO) < 0:
        os.close(fd)
        return None
    return fd


class SteadyRunner:
    """Mixed in before one of Mailman's runner classes (see the module's docstring)."""

    _mailstack_sleeping = False
    _mailstack_db_down = False
    _mailstack_wake_on_queue = True  # False where Mailman's class sleeps its own way (retry)
    _mailstack_watch = None  # the inotify descriptor of the queue directory, made at the first sleep

    def signal_handler(self, signum, frame):
        if signum in STOP_SIGNALS and not self._mailstack_sleeping:
            # Mailman's handler raises RunnerInterrupt here; while a message is being worked on,
            # that exception ends in the shunt queue. Stop after the message instead:
            # _short_circuit() and run() look at the flag.
            self.stop()
            self.status = signum
            rlog.info("%s runner caught signal %s while working: stopping after this pass", self.name, signum)
            return
        super().signal_handler(signum, frame)

    def _snooze(self, filecnt):
        self._mailstack_sleeping = True
        try:
            if self._stop:
                # A signal came while the runner worked: do not sleep first.
                raise RunnerInterrupt
            if filecnt or self.sleep_float <= 0 or not self._mailstack_wait_for_queue():
                super()._snooze(filecnt)
        finally:
            self._mailstack_sleeping = False

    def _mailstack_wait_for_queue(self):
        """Sleep until a message is queued for this runner or `sleep_time` passed; False when the
        runner has no queue directory to watch (it then sleeps Mailman's way).

        The watch is made once and kept, so a message queued while the runner works is not missed:
        its event waits in the descriptor and ends the next sleep at once."""
        if not self._mailstack_wake_on_queue or self.switchboard is None:
            return False
        if self._mailstack_watch is None:
            self._mailstack_watch = queue_watch(self.switchboard.queue_directory)
            if self._mailstack_watch is None:
                self._mailstack_wake_on_queue = False
                rlog.info("%s runner: no inotify on its queue, it sleeps %s s", self.name, self.sleep_float)
                return False
        readable, _, _ = select.select([self._mailstack_watch], [], [], self.sleep_float)
        if readable:
            try:
                while os.read(self._mailstack_watch, 65536):
                    pass
            except BlockingIOError:
                pass
        return True

    def _database_answers(self):
        """Whether PostgreSQL answers now, on a connection of its own (not the runner's session,
        which may hold uncommitted work). Logs each change, not each look."""
        try:
            with config.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except UNAVAILABLE as error:
            self._database_lost("queued messages wait", error)
            return False
        if self._mailstack_db_down:
            elog.error("%s runner: the database answers again", self.name)
        self._mailstack_db_down = False
        return True

    def _one_iteration(self):
        if self.switchboard is not None and self.switchboard.files and not self._database_answers():
            return 0
        return super()._one_iteration()

    def _short_circuit(self):
        # Asked after each message: leave the rest queued when the database went away meanwhile.
        return super()._short_circuit() or not self._database_answers()

    def _do_periodic(self):
        # The bounces and task runners use the database here; Mailman lets the error end the runner.
        try:
            super()._do_periodic()
        except UNAVAILABLE as error:
            config.db.abort()
            self._database_lost("periodic work waits", error)

    def _database_lost(self, what, error):
        """Log that the database does not answer, once until it answers again."""
        if not self._mailstack_db_down:
            reason = str(error).splitlines()[0]
            elog.error("%s runner: %s, the database does not answer: %s", self.name, what, reason)
        self._mailstack_db_down = True


class ArchiveRunner(SteadyRunner, _Archive):
    # Sleeps Mailman's way: a post reaches the archive queue from the pipeline runner before that
    # runner commits. A list made before mailstack's plugin and never posted to has no archiver
    # records yet, and an archive runner woken at once would make them a second time (see
    # mailstack_mailman/plugin.py). Archiving is not in a hurry.
    _mailstack_wake_on_queue = False


class BounceRunner(SteadyRunner, _Bounce):
    pass


class CommandRunner(SteadyRunner, _Command):
    pass


class DigestRunner(SteadyRunner, _Digest):
    pass


class IncomingRunner(SteadyRunner, _Incoming):
    pass


class NNTPRunner(SteadyRunner, _NNTP):
    pass


class OutgoingRunner(SteadyRunner, _Outgoing):
    pass


class PipelineRunner(SteadyRunner, _Pipeline):
    pass


class RetryRunner(SteadyRunner, _Retry):
    _mailstack_wake_on_queue = False  # it sleeps its retry interval on purpose


class TaskRunner(SteadyRunner, _Task):
    pass


class VirginRunner(SteadyRunner, _Virgin):
    pass
