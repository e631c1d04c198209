# Rule 6: zero-delay timers fire in the order they were started, and all of
# them before the callbacks their greenlets queue: A's sleep(0) resume
# comes after B and C started.
import gevent

def t(name):
    print(name, "start")
    gevent.sleep(0)
    print(name, "resumed")

gevent.spawn_later(0, t, "A")
gevent.spawn_later(0, t, "B")
gevent.spawn_later(0, t, "C")
gevent.sleep(0.001)
print("main after sleep")
