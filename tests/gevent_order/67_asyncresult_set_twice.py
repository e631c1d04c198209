# Needs AsyncResult. Rule 4: set() does not switch; one notifier wakes the
# get()/wait() callers FIFO. A second set() is not an error: it overwrites
# the value and queues no second wake-up; the waiters read the value when
# they run, so all of them see 2. set_exception() after set() stores the
# exception, but get() still returns the value (the value is checked
# first) and successful() stays True.
import gevent
from gevent.event import AsyncResult

ar = AsyncResult()

def getter(name):
    print(name, "get")
    print(name, "got", ar.get())

def waiter(name):
    print(name, "wait")
    print(name, "wait ->", ar.wait())

gs = [gevent.spawn(getter, "A"), gevent.spawn(waiter, "B"), gevent.spawn(getter, "C")]
gevent.sleep(0)
ar.set(1)
print("main set 1, ready", ar.ready())
ar.set(2)
print("main set 2, value", ar.value)
gevent.joinall(gs)
print("main get ->", ar.get())
ar.set_exception(ValueError("late"))
print("main set_exception: successful", ar.successful(), "exception", repr(ar.exception))
print("main get ->", ar.get())
