# An earlier link may unlink a later one of the same greenlet while the
# entry is firing; the removed link never runs. (G's links entry is queued
# behind main's first resume.)
import gevent

def first(src):
    print("link 1 unlinks link 3")
    g.unlink(third)

def third(src):
    print("link 3")

g = gevent.spawn(lambda: print("G runs"))
g.rawlink(first)
g.rawlink(lambda src: print("link 2"))
g.rawlink(third)
g.rawlink(lambda src: print("link 4"))
for i in (1, 2):
    gevent.sleep(0)
    print("main after sleep0", i)
