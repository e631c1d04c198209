# Needs AsyncResult. Rule 4: set_exception() wakes the waiters FIFO like
# set(); a blocked get() raises the exception, wait() returns None. A get()
# on a failed result raises at once without switching. A later set(v)
# makes it successful: get() then returns v, though exception stays.
import gevent
from gevent.event import AsyncResult

ar = AsyncResult()

def getter(name):
    print(name, "get")
    try:
        print(name, "got", ar.get())
    except ValueError as e:
        print(name, "get raised", repr(e))

def waiter(name):
    print(name, "wait")
    print(name, "wait ->", ar.wait())

gs = [gevent.spawn(getter, "A"), gevent.spawn(waiter, "B"), gevent.spawn(getter, "C")]
gevent.sleep(0)
ar.set_exception(ValueError("boom"))
print("main set_exception, ready", ar.ready(), "successful", ar.successful())
gevent.joinall(gs)
gevent.spawn(lambda: print("X runs"))
try:
    ar.get()
except ValueError as e:
    print("main get raised", repr(e))
print("main get(block=False) raises too:", end=" ")
try:
    ar.get(block=False)
except ValueError as e:
    print(repr(e))
ar.set(5)
print("main set 5: successful", ar.successful(), "exception", repr(ar.exception))
print("main get ->", ar.get())
gevent.sleep(0)
print("main done")
