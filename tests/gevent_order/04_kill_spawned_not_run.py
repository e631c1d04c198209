# Rules 1, 3: a spawned greenlet whose start entry is still queued is
# killed without ever running, even with the blocking kill; the kill does
# not yield, the start entry is dropped, and the links fire as a new entry
# at the tail of the queue (after A, which was queued after G's start).
import gevent

g = gevent.spawn(lambda: print("G runs"))
gevent.spawn(lambda: print("A start"))
g.link(lambda src: print("link G"))
g.kill()
print("main after blocking kill")
gevent.spawn(lambda: print("B start"))
gevent.sleep(0)
print("main after sleep0")
