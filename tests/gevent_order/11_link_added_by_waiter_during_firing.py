# Rule 2: main is woken from join() by G's links entry and, while that
# entry is still in progress, adds a link to G. That link joins the running
# entry: it fires as soon as main blocks, even before A, whose start was
# queued earlier than main's sleep(0).
import gevent

g = gevent.spawn(lambda: print("G runs"))
g.join()
print("main joined G")
gevent.spawn(lambda: print("A start"))
g.link(lambda src: print("link G"))
gevent.spawn(lambda: print("B start"))
gevent.sleep(0)
print("main after sleep0")
