# Needs RLock. Rule 7: the owner re-acquires without blocking; the lock is
# free only after as many releases. A release by a greenlet that does not
# own it raises RuntimeError. Waiters are FIFO; the final release by the
# owner does not switch, and the next waiter becomes owner when it runs.
import gevent
from gevent.lock import RLock

rl = RLock()

def contender(name):
    print(name, "acquires")
    with rl:
        print(name, "owns")
        gevent.sleep(0)
        print(name, "releases")

def intruder():
    try:
        rl.release()
    except RuntimeError as e:
        print("intruder release:", type(e).__name__, str(e).split(".")[0])

print("main acquire ->", rl.acquire())
print("main re-acquire ->", rl.acquire())
gs = [gevent.spawn(contender, n) for n in "AB"]
gevent.spawn(intruder).join()
rl.release()
print("main released once, locked", rl.locked())
gevent.sleep(0)
print("main after sleep0")
rl.release()
print("main released twice, locked", rl.locked())
gevent.joinall(gs)
print("main joined, locked", rl.locked())
try:
    rl.release()
except RuntimeError as e:
    print("main release:", type(e).__name__, str(e).split(".")[0])
