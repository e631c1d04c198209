# Needs BoundedSemaphore and Lock. Rule 7: BoundedSemaphore released above
# its initial value raises ValueError; the Lock (gevent.thread's lock, a
# BoundedSemaphore(1)) raises RuntimeError with the same message. Lock
# waiters are FIFO and release() does not switch. A failed non-blocking
# Lock.acquire(False) yields (it calls sleep(0)): X runs inside it; a
# failed BoundedSemaphore.acquire(blocking=False) does not yield.
import gevent
from gevent.lock import BoundedSemaphore
from gevent.thread import allocate_lock

bs = BoundedSemaphore(2)
bs.acquire()
bs.release()
try:
    bs.release()
except ValueError as e:
    print("bounded over-release:", type(e).__name__, e)
print("bounded counter", bs.counter)

lock = allocate_lock()
print("lock acquire ->", lock.acquire(), "locked", lock.locked())

def worker(name):
    print(name, "acquires")
    with lock:
        print(name, "holds")
        gevent.sleep(0)
        print(name, "releases")

gs = [gevent.spawn(worker, n) for n in "AB"]
gevent.sleep(0)
lock.release()
print("main released")
gevent.joinall(gs)
print("main joined, locked", lock.locked())
try:
    lock.release()
except RuntimeError as e:
    print("lock over-release:", type(e).__name__, e)

lock.acquire()
gevent.spawn(lambda: print("X runs"))
print("lock acquire(False) ->", lock.acquire(False))
bs.acquire()
bs.acquire()
gevent.spawn(lambda: print("Y runs"))
print("bounded acquire(blocking=False) ->", bs.acquire(blocking=False))
gevent.sleep(0)
print("main done")
