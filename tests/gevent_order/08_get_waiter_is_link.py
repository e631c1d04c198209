# Rule 2: get() waits the same way as join(): the waiter is woken at its
# place among the links, runs to its next blocking point, and only then do
# the later links fire.
import gevent

def body():
    print("G runs")
    return 42

g = gevent.spawn(body)
g.link(lambda src: print("link 1"))

def h():
    print("H links 2")
    g.link(lambda src: print("link 2"))
    g.link(lambda src: print("link 3"))

gevent.spawn(h)
print("main got", g.get())
gevent.sleep(0)
print("main after sleep0")
