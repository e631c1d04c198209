# Needs Event. Rule 6: event.wait(0) only times out after the callback
# pass; A, spawned before the wait, sets the event in that pass, so the
# zero-timeout wait reports it set.
import gevent
from gevent.event import Event

ev = Event()

def setter():
    print("A sets")
    ev.set()

gevent.spawn(setter)
print("main wait(0) ->", ev.wait(0))
ev2 = Event()
print("main wait(0) on unset ->", ev2.wait(0))
