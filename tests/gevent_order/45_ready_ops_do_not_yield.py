# join, get and blocking kill on an already finished greenlet return at
# once, without yielding: A, spawned before them, has not started yet.
import gevent

g = gevent.spawn(lambda: 7)
g.join()
gevent.spawn(lambda: print("A start"))
g.join()
print("main join returned")
print("main get returned", g.get())
g.kill()
print("main kill returned")
gevent.sleep(0)
print("main after sleep0")
