"""Sending alerts: one thread per channel claims that channel's due deliveries, sends them, and records the outcome.

A thread per channel, so that a channel that hangs (an SMTP server that accepts and never answers, until
Apprise's timeout) delays neither another channel nor the monitor's reaping, which never waits for a send.
A delivery is claimed with a compare-and-set (`AlertStore.claim`): of two monitors exactly one sends it. A claim
lasts `LEASE_S`; a monitor that dies mid-send leaves the delivery to be claimed again after that (the one case in
which a message can go twice: the first send may have gone through before the death).

A failed send is tried again after 10 s, doubling up to 30 min, `MAX_ATTEMPTS` times in all (about two and a half
hours), then marked `failed` and logged. The retry's time is in the database, so a monitor that restarts, or the
other monitor, picks it up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..base import sanitize
from ..base.clock import iso, now_ms
from ..storage.alerts import FAILED, PENDING, SENT, AlertStore
from .channels import Channels, notify_type

log = logging.getLogger("runtracker")

RETRY_FIRST_S = 10.0
RETRY_MAX_S = 1800.0
MAX_ATTEMPTS = 10
LEASE_S = 120.0  # longer than any send: Apprise's timeouts (channels.SEND_TIMEOUT_S) per URL, twice
IDLE_WAIT_S = 1.0  # how often an idle channel looks for retries that came due (new alerts wake it at once)


def backoff_s(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 10 s, 20 s, 40 s, ... at most 30 min."""
    return min(RETRY_FIRST_S * 2 ** max(attempts - 1, 0), RETRY_MAX_S)


class Deliverer:
    """The sending threads of one monitor."""

    def __init__(self, alerts: AlertStore, channels: Channels, by: str, clock: Callable[[], int] = now_ms) -> None:
        self.alerts = alerts
        self.channels = channels
        self.by = by  # who claims: host, pid and a random part, new for every monitor process
        self.clock = clock
        self._stop = threading.Event()
        self._wake: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._started = False

    def start(self) -> None:
        """A thread for every channel that has none yet (channels added to the config file get theirs)."""
        self._started = True
        for name in self.channels.names:
            if name not in self._threads:
                self._wake[name] = threading.Event()
                thread = threading.Thread(target=self._loop, args=(name,), name=f"runtracker-alerts-{name}",
                                          daemon=True)
                self._threads[name] = thread
                thread.start()

    def use(self, channels: Channels) -> None:
        """The config file changed: send through these channels from now on. New channels get their threads only
        if sending has started: a watcher that was never started (a dashboard asking for statuses, a test) or that
        was stopped must not leave threads behind that write into a store closed under them."""
        self.channels = channels
        if self._started and not self._stop.is_set():
            self.start()

    def wake(self) -> None:
        """New alerts: every channel looks for due deliveries now."""
        for event in self._wake.values():
            event.set()

    def stop(self, wait_s: float = 5.0) -> bool:
        """Stop the threads; False if a send is still hanging after `wait_s` (its thread is left to Apprise's
        timeout; its delivery stays claimed until the claim runs out, then another monitor retries it)."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + wait_s
        for thread in self._threads.values():
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in self._threads.values())

    def _loop(self, channel: str) -> None:
        wake = self._wake[channel]
        while not self._stop.is_set():
            wake.clear()
            try:
                busy = self.send_due(channel)
            except Exception as exc:  # the database away: try again shortly, never die
                log.error("runtracker: alerts through %s: cannot read or write the deliveries (%s: %s)", channel,
                          type(exc).__name__, exc)
                busy = 0
            if not busy:
                wake.wait(IDLE_WAIT_S)

    def send_due(self, channel: str) -> int:
        """Claim and send this channel's due deliveries; how many were tried."""
        if channel not in self.channels.names:
            return 0  # removed from the config file: its deliveries wait (or another monitor sends them)
        tried = 0
        for delivery in self.alerts.due_deliveries(channel, iso(self.clock())):
            if self._stop.is_set():
                break
            now = self.clock()
            if not self.alerts.claim(delivery, self.by, iso(now + int(LEASE_S * 1000))):
                continue  # another monitor took it
            tried += 1
            # Apprise's own messages may quote a channel URL, password and all: stored and logged redacted.
            sent = self.channels.send(channel, delivery["title"], delivery["body"], notify_type(delivery["event"]))
            error = sanitize.optional_text(sent, sanitize.MESSAGE_LIMIT)
            attempts = int(delivery["attempts"]) + 1
            now = self.clock()
            if error is None:
                self.alerts.finish_delivery(delivery["id"], self.by, SENT, at=iso(now))
                log.info("runtracker: alert %r sent through %s", delivery["event_key"], channel)
            elif attempts >= MAX_ATTEMPTS:
                self.alerts.finish_delivery(delivery["id"], self.by, FAILED, at=iso(now), error=error)
                log.error("runtracker: alert %r could not be sent through %s after %d attempts, given up: %s",
                          delivery["event_key"], channel, attempts, error)
            else:
                wait = backoff_s(attempts)
                self.alerts.finish_delivery(delivery["id"], self.by, PENDING, at=iso(now), error=error,
                                            next_attempt_at=iso(now + int(wait * 1000)))
                log.warning("runtracker: alert %r not sent through %s (attempt %d; again in %g s): %s",
                            delivery["event_key"], channel, attempts, wait, error)
        return tried
