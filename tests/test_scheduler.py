"""The model gate: one call at a time, interactive calls before bulk chunks, a bounded wait, a clear refusal."""

import threading
import time

import pytest

from clipdemo.core.words import Refusal
from clipdemo.serving.scheduler import ModelGate, Priority
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


def _run_order(gate, holder, arrivals, probe=lambda: None):
    """Hold `gate` with a `holder` call; let `arrivals` [(priority, name)] queue up one after another; call
    `probe()` once all wait; release. Returns the names in the order they got the model, and what `probe` gave."""
    order, release, held = [], threading.Event(), threading.Event()

    def hold():
        with gate.hold(holder):
            held.set()
            release.wait(10)

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    assert held.wait(10)
    for n, (priority, name) in enumerate(arrivals, start=1):
        threads.append(threading.Thread(target=_hold_and_log, args=(gate, priority, order, name)))
        threads[-1].start()
        while gate.waiting < n:
            time.sleep(0.0005)
    probed = probe()
    release.set()
    for t in threads:
        t.join(10)
    return order, probed


def test_a_waiting_interactive_call_goes_before_a_bulk_chunk_that_waited_longer():
    for _ in range(20):  # wake-up order is the OS's: repeat, so luck cannot pass this
        order, _ = _run_order(ModelGate(), Priority.BULK,
                              [(Priority.BULK, "bulk 2"), (Priority.INTERACTIVE, "interactive")])
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
    with pytest.raises(Refusal, match=r"^The Space is busy: about [\d.]+ s of work is waiting for the model \(2 in line\); "
                                   r"try again in a minute\.$"):
        with gate.hold(Priority.INTERACTIVE):
            pass
    threads.append(threading.Thread(target=lambda: _hold_and_log(gate, Priority.BACKGROUND, [], "index")))
    threads[-1].start()  # the search index's one thread waits even at a full gate (refused, it would end for good)
    for _ in range(5000):  # up to 5 s: a refused chunk's thread would have ended instead
        if gate.waiting == 3 or not threads[-1].is_alive():
            break
        time.sleep(0.001)
    assert gate.waiting == 3 and threads[-1].is_alive()
    release.set()
    for t in threads:
        t.join(10)
    with gate.hold(Priority.INTERACTIVE):  # the next request succeeds
        pass
    assert gate.stats.refused == 1 and gate.waiting == 0 and gate.stats.grants[Priority.BACKGROUND] == 1


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
    with pytest.raises(Refusal) as refused:  # a fourth would wait 0.4 + 0.3 = 0.7 s
        with gate.hold(Priority.INTERACTIVE):
            pass
    assert str(refused.value) == ("The Space is busy: about 0.7 s of work is waiting for the model (3 in line); "
                                  "try again in a minute.")
    assert refused.value.say("tr").startswith("Space meşgul: modeli yaklaşık 0.7 saniyelik iş bekliyor (sırada 3)")
    assert refused.value.text.values == ("0.7", 3)
    threads += _waiters(gate, [Priority.BULK])  # bulk work already under way is never refused for its wait
    release.set()
    for t in [first, *threads]:
        t.join(10)
    assert gate.stats.refused == 1 and gate.stats.grants[Priority.BULK] == 2


# -- background chunks (the search index): after everything else, when visitors leave the model alone ---------------
def _visitor(gate, calls, log, gap_s=0.001):
    for i in range(calls):
        with gate.hold(Priority.INTERACTIVE):
            log.append(("visitor", i))
            time.sleep(0.002)
        time.sleep(gap_s)


def test_a_background_chunk_waits_while_a_visitor_calls_back_to_back_and_goes_once_they_stop():
    gate, log = ModelGate(quiet_s=1.0, max_defer_s=60), []
    visitor = threading.Thread(target=_visitor, args=(gate, 60, log))
    visitor.start()
    while not log:
        time.sleep(0.001)
    background = threading.Thread(target=_hold_and_log, args=(gate, Priority.BACKGROUND, log, "background"))
    background.start()
    visitor.join(30)
    stopped = time.monotonic()
    background.join(30)
    assert log[-1] == "background" and len(log) == 61  # after the visitor's last call, not in a gap between two
    assert time.monotonic() - stopped < 5 and gate.stats.grants[Priority.BACKGROUND] == 1


def test_a_background_chunk_deferred_too_long_goes_in_a_gap_and_no_visitor_waits_through_more_than_one():
    gate, log, stop = ModelGate(quiet_s=60, max_defer_s=0.05), [], threading.Event()

    def index():
        while not stop.is_set():
            with gate.hold(Priority.BACKGROUND):
                log.append(("background", 0))
                time.sleep(0.01)

    background = threading.Thread(target=index)
    visitors = [threading.Thread(target=_visitor, args=(gate, 150, log, 0.003)) for _ in range(2)]
    for t in [*visitors, background]:
        t.start()
    for t in visitors:
        t.join(60)
    stop.set()
    background.join(30)
    last_visit = max(i for i, e in enumerate(log) if e[0] == "visitor")
    during = [e for e in log[:last_visit] if e[0] == "background"]
    assert len(during) >= 2  # the index still moves while visitors are busy (a quiet 60 s never came) ...
    assert gate.stats.max_bulk_chunks_waited <= 1  # ... and never makes a visitor wait through more than one chunk


def test_bulk_work_goes_before_a_background_chunk_that_waited_longer():
    for _ in range(10):
        gate = ModelGate(quiet_s=0, max_defer_s=0, clock=FakeClock())
        order, expected = _run_order(gate, Priority.INTERACTIVE,
                                     [(Priority.BACKGROUND, "background"), (Priority.BULK, "bulk")],
                                     lambda: gate.expected_wait(Priority.INTERACTIVE))
        assert order == ["bulk", "background"]
        assert expected == pytest.approx(0.1 + 0.4)  # a visitor arriving meanwhile: the holder, the bulk chunk only
