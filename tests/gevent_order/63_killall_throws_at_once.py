# killall throws into each started greenlet at once (gevent's _killall3
# calls g.throw()), even one queued to resume: it does not run another
# round first.
import gevent
from gevent import GreenletExit

def spinner():
    i = 0
    try:
        while True:
            i += 1
            print("spin", i)
            gevent.sleep(0)
    except GreenletExit:
        print("spinner exit at", i)

s = gevent.spawn(spinner)
gevent.sleep(0)
gevent.sleep(0)
print("main killall")
gevent.killall([s])
print("main done", s.dead)
