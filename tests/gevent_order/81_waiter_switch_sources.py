# Needs hub.Waiter. Rule 9: while A is blocked in get(), switch() must come
# from the hub: called from another greenlet it raises AssertionError and
# A stays blocked. From a hub callback (loop.run_callback) it switches to A
# at the callback's place in the queue: after B's start, queued before it,
# and before main's sleep(0) resume, queued after it; A runs to its next
# block inside the callback. throw() from a callback raises in A's get().
import gevent
from gevent.hub import Waiter

hub = gevent.get_hub()
w = Waiter()

def a():
    print("A get")
    print("A got", w.get())
    gevent.sleep(0)
    print("A resumed")
    print("A get again")
    try:
        w.get()
    except KeyError as e:
        print("A get raised", repr(e))

ga = gevent.spawn(a)
gevent.sleep(0)
try:
    w.switch("from main")
except AssertionError as e:
    print("main switch:", type(e).__name__, e)
gevent.spawn(lambda: print("B runs"))
hub.loop.run_callback(w.switch, "from callback")
print("main queued switch")
gevent.sleep(0)
print("main after sleep0")
gevent.sleep(0)
hub.loop.run_callback(w.throw, KeyError("k"))
print("main queued throw")
ga.join()
print("main joined")
