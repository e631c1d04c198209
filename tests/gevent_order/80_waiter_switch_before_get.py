# Needs hub.Waiter. Rule 9: switch() before anyone is in get() only stores
# the value (allowed from any greenlet, no switch); the next get() returns
# it at once without switching (X has not run). throw() before get() stores
# the exception; get() raises it at once. A Waiter keeps what it stored
# until clear().
import gevent
from gevent.hub import Waiter

w = Waiter()
gevent.spawn(lambda: print("X runs"))
w.switch("v")
print("main switched, ready", w.ready(), "successful", w.successful())
print("main get ->", w.get())
print("main get again ->", w.get())
w.clear()
print("main cleared, ready", w.ready())

w.throw(ValueError("stored"))
print("main threw, ready", w.ready(), "successful", w.successful())
try:
    w.get()
except ValueError as e:
    print("main get raised", repr(e))
gevent.sleep(0)
print("main done")
