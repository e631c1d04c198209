# A link that spawns: the new greenlet's start goes to the tail, behind
# main's second resume, which was queued before the links entry ran.
import gevent

def on_done(src):
    print("link G spawns X")
    gevent.spawn(lambda: print("X start"))

g = gevent.spawn(lambda: print("G runs"))
g.link(on_done)
gevent.spawn(lambda: print("B start"))
for i in (1, 2, 3):
    gevent.sleep(0)
    print("main after sleep0", i)
