# Needs Semaphore. Rule 7: acquire() waiters are woken FIFO by one notifier
# queued by release(); release() does not switch. The notifier wakes
# waiters only while the counter is positive (each woken waiter takes one
# before the next is woken): two releases wake A and B, C keeps waiting.
# acquire() while the counter is positive takes it at once without
# switching, even with waiters queued (main barges past C, whose notifier
# then finds the counter at 0 and wakes nobody).
import gevent
from gevent.lock import Semaphore

sem = Semaphore(0)

def worker(name):
    print(name, "acquires")
    sem.acquire()
    print(name, "acquired, counter", sem.counter)
    gevent.sleep(0)
    print(name, "resumed")

gs = [gevent.spawn(worker, n) for n in "ABC"]
gevent.sleep(0)
sem.release()
print("main released, counter", sem.counter)
sem.release()
print("main released, counter", sem.counter)
gevent.sleep(0)
print("main after sleep0, counter", sem.counter)
gevent.spawn(lambda: print("X runs"))
sem.release()
print("main released, counter", sem.counter)
print("main acquire ->", sem.acquire(), "counter", sem.counter)
gevent.sleep(0)
print("main after sleep0, C dead", gs[2].dead)
sem.release()
print("main released")
gevent.joinall(gs)
print("main joined, counter", sem.counter)
