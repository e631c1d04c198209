# Rule 4: a kill aimed at A while A is queued to resume is queued behind
# that resume with its own place: B, queued between them, runs before the
# kill is raised in A (at the blocking call A is in by then).
import gevent
from gevent import GreenletExit

def a():
    gevent.sleep(0)
    print("a after sleep0")
    try:
        gevent.sleep(0)
        print("a not killed")
    except GreenletExit:
        print("a exit")

def b():
    gevent.sleep(0)
    print("b after sleep0")

ga = gevent.spawn(a)
gb = gevent.spawn(b)
gevent.sleep(0)
print("main kills a")
ga.kill(block=False)
gevent.joinall([ga, gb])
print("main joined")
