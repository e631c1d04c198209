# Rule 6: spawn_later(0) starts on a timer, after the callback pass, so a
# greenlet spawned after it with spawn() (and what that one queues) runs
# first.
import gevent

def b():
    print("B start")
    gevent.sleep(0)
    print("B resumed")

gevent.spawn_later(0, lambda: print("L start"))
gevent.spawn(b)
print("main sleeps")
gevent.sleep(0.001)
print("main after sleep")
