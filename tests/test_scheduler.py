"""The model gate: one call at a time, interactive calls before bulk chunks, a bounded wait, a clear refusal."""

import threading
import time

import pytest

from clipdemo.serving.scheduler import Busy, ModelGate, Priority
def _bulk_job(gate, chunks, log, name="bulk", stop=None):
    for i in range(chunks):
        if stop is not None and stop.is_set():
            return
        with gate.hold(Priority.BULK):
            log.append((name, i, "start"))
            time.sleep(0.02)
            log.append((name, i, "end"))


def test_one_call_at_a_time_under_load():
    gate, inside, most = ModelGate(), [0], [0]
    lock = threading.Lock()

    def call(priority):
        with gate.hold(priority):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.002)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=lambda p=p: [call(p) for _ in range(20)])
               for p in [Priority.BULK] * 3 + [Priority.INTERACTIVE] * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] == 1
    assert gate.stats.grants[Priority.BULK] == 60 and gate.stats.grants[Priority.INTERACTIVE] == 100


def test_interactive_calls_never_wait_behind_more_than_one_bulk_chunk():
    gate, log, stop = ModelGate(), [], threading.Event()
    bulk = [threading.Thread(target=_bulk_job, args=(gate, 10_000, log, f"bulk{k}", stop)) for k in range(2)]
    for t in bulk:
        t.start()
    seen = []

    def visitor(k):
        for i in range(15):
            before = sum(1 for e in log if e[2] == "end" and e[0].startswith("bulk"))
            with gate.hold(Priority.INTERACTIVE):
                after = sum(1 for e in log if e[2] == "end" and e[0].startswith("bulk"))
                seen.append(after - before)
                log.append((f"v{k}", i, "run"))
            time.sleep(0.001)

    visitors = [threading.Thread(target=visitor, args=(k,)) for k in range(6)]
    for t in visitors:
        t.start()
    for t in visitors:
        t.join(60)
    stop.set()
    for t in bulk:
        t.join(30)
    assert len(seen) == 90 and max(seen) <= 1  # each waited through at most one bulk chunk
    assert gate.stats.max_bulk_chunks_waited <= 1
    chunks_during = [e for e in log if e[2] == "start" and e[0].startswith("bulk")]
    assert len(chunks_during) >= 10  # bulk work still got chunks in between the visitors


def test_a_waiting_interactive_call_goes_before_a_bulk_chunk_that_waited_longer():
    for _ in range(20):  # wake-up order is the OS's: repeat, so luck cannot pass this
        gate, order = ModelGate(), []
        release, started = threading.Event(), threading.Event()

        def first_chunk():
            with gate.hold(Priority.BULK):
                started.set()
                release.wait(10)

        t = threading.Thread(target=first_chunk)
        t.start()
        assert started.wait(10)
        b = threading.Thread(target=_hold_and_log, args=(gate, Priority.BULK, order, "bulk 2"))
        b.start()
        while gate.waiting < 1:
            time.sleep(0.0005)
        i = threading.Thread(target=_hold_and_log, args=(gate, Priority.INTERACTIVE, order, "interactive"))
        i.start()
        while gate.waiting < 2:
            time.sleep(0.0005)
        release.set()
        for th in (t, b, i):
            th.join(10)
        assert order == ["interactive", "bulk 2"]


def _hold_and_log(gate, priority, order, name):
    with gate.hold(priority):
        order.append(name)


def test_a_full_gate_refuses_with_a_sentence_and_recovers():
    gate = ModelGate(max_waiting=2)
    release, started = threading.Event(), threading.Event()

    def holder():
        with gate.hold(Priority.BULK):
            started.set()
            release.wait(10)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert started.wait(10)
    for _ in range(2):
        threads.append(threading.Thread(target=lambda: _hold_and_log(gate, Priority.INTERACTIVE, [], "x")))
        threads[-1].start()
    while gate.waiting < 2:
        time.sleep(0.001)
    with pytest.raises(Busy, match=r"^The Space is busy: about [\d.]+ s of work is waiting for the model \(2 in line\); "
                                   r"try again in a minute\.$"):
        with gate.hold(Priority.INTERACTIVE):
            pass
    release.set()
    for t in threads:
        t.join(10)
    with gate.hold(Priority.INTERACTIVE):  # the next request succeeds
        pass
    assert gate.stats.refused == 1 and gate.waiting == 0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _waiters(gate, priorities):
    """Threads waiting at the gate with these priorities (the gate must be held); returns them once all wait."""
    threads = [threading.Thread(target=lambda p=p: _hold_and_log(gate, p, [], "x")) for p in priorities]
    for t in threads:
        t.start()
    while gate.waiting < len(priorities):
        time.sleep(0.001)
    return threads


def test_the_expected_wait_counts_the_holders_rest_the_interactive_calls_ahead_and_one_bulk_chunk():
    clock = FakeClock()
    gate = ModelGate(clock=clock)  # before any measurement: 0.1 s an interactive call, 0.4 s a bulk chunk
    assert gate.expected_wait() == 0.0
    release, held = threading.Event(), threading.Event()

    def holder():
        with gate.hold(Priority.INTERACTIVE):
            held.set()
            release.wait(10)
            clock.now += 0.6  # this call took 0.6 s by the gate's clock

    first = threading.Thread(target=holder)
    first.start()
    assert held.wait(10)
    clock.now += 0.04  # the holder has 0.06 s left of the usual 0.1
    threads = _waiters(gate, [Priority.INTERACTIVE] * 3 + [Priority.BULK] * 2)
    assert gate.expected_wait(Priority.INTERACTIVE) == pytest.approx(0.06 + 3 * 0.1 + 0.4)  # one chunk goes first
    assert gate.expected_wait(Priority.BULK) == pytest.approx(0.06 + 3 * 0.1 + 2 * 0.4)  # behind every chunk waiting
    release.set()
    for t in [first, *threads]:
        t.join(10)
    # Each measured call moves its kind's average a fifth of the way: the first call held the model for 0.64 s by
    # the gate's clock, which made it 0.1 + 0.54 / 5; the later calls took no time, and it decays towards that.
    assert gate.call_seconds(Priority.INTERACTIVE) == pytest.approx((0.1 + 0.54 / 5) * 0.8**3)
    assert gate.call_seconds(Priority.BULK) == pytest.approx(0.4 * 0.8**2)


def test_a_call_expected_to_wait_too_long_is_refused_with_its_wait_but_a_bulk_chunk_is_not():
    clock = FakeClock()
    gate = ModelGate(max_wait_s=0.65, clock=clock)
    release, held = threading.Event(), threading.Event()

    def holder():
        with gate.hold(Priority.BULK):
            held.set()
            release.wait(10)

    first = threading.Thread(target=holder)
    first.start()
    assert held.wait(10)
    threads = _waiters(gate, [Priority.INTERACTIVE] * 3)  # the third expects 0.4 (the chunk) + 0.2 s: admitted
    with pytest.raises(Busy) as refused:  # a fourth would wait 0.4 + 0.3 = 0.7 s
        with gate.hold(Priority.INTERACTIVE):
            pass
    assert str(refused.value) == ("The Space is busy: about 0.7 s of work is waiting for the model (3 in line); "
                                  "try again in a minute.")
    assert refused.value.say("tr").startswith("Space meşgul: modeli yaklaşık 0.7 saniyelik iş bekliyor (sırada 3)")
    assert (refused.value.waiting, refused.value.seconds) == (3, pytest.approx(0.7))
    threads += _waiters(gate, [Priority.BULK])  # bulk work already under way is never refused for its wait
    release.set()
    for t in [first, *threads]:
        t.join(10)
    assert gate.stats.refused == 1 and gate.stats.grants[Priority.BULK] == 2
