# A link that adds another link to the same greenlet: the new link joins
# the entry that is firing and runs at its end (after main's join waiter,
# registered before it), still ahead of A, whose start main queued while
# the entry was firing.
import gevent

def first(src):
    print("link 1 adds link 3")
    g.link(lambda src: print("link 3"))

def a():
    print("A start")

g = gevent.spawn(lambda: print("G runs"))
g.link(first)
g.link(lambda src: print("link 2"))
g.join()
print("main joined")
gevent.spawn(a)
gevent.sleep(0)
print("main after sleep0")
