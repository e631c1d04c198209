# Rule 6: join(timeout=0) lets the whole callback pass run first: A, spawned
# before the join, runs, and G (started and finishing in the pass) counts
# as joined; a greenlet blocked forever is not.
import gevent

gevent.spawn(lambda: print("A start"))
g = gevent.spawn(lambda: print("G runs"))
g.join(timeout=0)
print("main join(0) returned, G ready:", g.ready())
h = gevent.spawn(gevent.sleep, 10)
h.join(timeout=0)
print("main join(0) on sleeper returned, H ready:", h.ready())
h.kill()
