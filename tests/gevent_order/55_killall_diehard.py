# killall(block=True) with a greenlet that survives the throw: killall then
# joins the survivor, so it returns only after the survivor finished (and,
# being a join, after the links registered before it).
import gevent
from gevent import GreenletExit

def stubborn():
    try:
        gevent.sleep(10)
    except GreenletExit:
        print("S caught exit")
    gevent.sleep(0)
    print("S end")

def plain():
    try:
        gevent.sleep(10)
    finally:
        print("P exits")

s = gevent.spawn(stubborn)
p = gevent.spawn(plain)
s.link(lambda src: print("link S"))
p.link(lambda src: print("link P"))
gevent.sleep(0)
gevent.killall([s, p])
print("main after killall")
gevent.sleep(0)
print("main after sleep0")
