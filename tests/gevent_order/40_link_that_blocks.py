# A link (run in its own greenlet) that does sleep(0): the rest of the
# entry's links run first, then whatever was queued before, then the
# link's resume.
import gevent

def slow(src):
    print("link 1 sleeps")
    gevent.sleep(0)
    print("link 1 resumed")

g = gevent.spawn(lambda: print("G runs"))
g.link(slow)
g.link(lambda src: print("link 2"))
gevent.spawn(lambda: print("B start"))
for i in (1, 2, 3):
    gevent.sleep(0)
    print("main after sleep0", i)
