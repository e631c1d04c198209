# Needs Event. Rule 3: wait(timeout=0) on an unset event blocks until the
# zero timer fires after the callback pass: A and B start, and A resumes
# from its sleep(0), before it returns False. wait(timeout=0) on a set
# event returns True without switching (C does not run first).
import gevent
from gevent.event import Event

ev = Event()

def a():
    print("A runs")
    gevent.sleep(0)
    print("A resumed")

gevent.spawn(a)
gevent.spawn(lambda: print("B runs"))
print("main wait(timeout=0) ->", ev.wait(timeout=0))
ev.set()
gevent.spawn(lambda: print("C runs"))
print("main wait(timeout=0) on set ->", ev.wait(timeout=0))
gevent.sleep(0)
print("main done")
