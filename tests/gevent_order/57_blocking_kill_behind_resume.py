# Rules 3, 4: a blocking kill of G whose sleep(0) resume is already queued:
# G resumes, runs to its next blocking point, the exit is raised there,
# and main returns before G's link fires.
import gevent
from gevent import GreenletExit

def body():
    print("G start")
    gevent.sleep(0)
    print("G resumed")
    try:
        gevent.sleep(10)
    except GreenletExit:
        print("G exit in second sleep")

g = gevent.spawn(body)
g.link(lambda src: print("link G"))
gevent.sleep(0)
g.kill()
print("main after kill")
gevent.sleep(0)
print("main after sleep0")
