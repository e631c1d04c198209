# Needs Event. Rule 1: set() with waiters queues one notifier and does not
# switch. The notifier wakes, FIFO, every waiter registered when it
# started, even though main clear()ed the event before it ran; each wait()
# returns True. A, woken first, waits again on the (cleared) event: that
# is a new registration, not part of this pass, so A stays blocked until
# the second set().
import gevent
from gevent.event import Event

ev = Event()

def waiter(name, again):
    print(name, "waits")
    r = ev.wait()
    print(name, "woken ->", r, "is_set", ev.is_set())
    if again:
        print(name, "waits again")
        r = ev.wait()
        print(name, "woken again ->", r)

gs = [gevent.spawn(waiter, n, n == "A") for n in "ABC"]
gevent.sleep(0)
ev.set()
print("main set")
ev.clear()
print("main cleared, is_set", ev.is_set())
gevent.sleep(0)
print("main after sleep0")
ev.set()
print("main set again")
gevent.joinall(gs)
print("main joined")
