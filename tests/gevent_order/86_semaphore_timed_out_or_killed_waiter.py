# Needs Semaphore. Rules 6/7: a waiter that leaves acquire() by timeout or
# kill takes nothing. A's acquire(timeout=0) fires first in the timer
# batch, then B's Timeout(0) makes B release in the same loop turn: the
# counter stays 1 and A got False. C, killed before the release's
# notifier runs, also takes nothing. D, killed after it, got the slot
# first (acquire returned True) and dies at its next block, holding it.
import gevent
from gevent import GreenletExit
from gevent.lock import Semaphore
from gevent.event import Event

sem = Semaphore(0)
never = Event()

def a():
    print("A acquires with timeout=0")
    print("A acquire ->", sem.acquire(timeout=0))

def b():
    print("B waits with Timeout(0)")
    with gevent.Timeout(0, False):
        never.wait()
    sem.release()
    print("B released, counter", sem.counter)

gevent.joinall([gevent.spawn(a), gevent.spawn(b)])
print("main joined, counter", sem.counter)
sem.acquire()

def waiter(name):
    print(name, "acquires")
    try:
        print(name, "acquire ->", sem.acquire())
        gevent.sleep(0)
        print(name, "not killed")
    except GreenletExit:
        print(name, "exit")

c = gevent.spawn(waiter, "C")
gevent.sleep(0)
c.kill(block=False)
sem.release()
print("main killed C, released")
c.join()
print("main joined C, counter", sem.counter)
sem.acquire()

d = gevent.spawn(waiter, "D")
gevent.sleep(0)
sem.release()
d.kill(block=False)
print("main released, killed D")
d.join()
print("main joined D, counter", sem.counter)
