# Rules 2, 3: a blocking kill of a started greenlet returns to the killer
# right after the target died, before any of the target's links fire
# (including a link registered before the kill).
import gevent

def body():
    print("G start")
    try:
        gevent.sleep(10)
    finally:
        print("G exits")

g = gevent.spawn(body)
g.link(lambda src: print("link G"))
g.rawlink(lambda src: print("rawlink G"))
gevent.sleep(0)
g.kill()
print("main after kill")
gevent.sleep(0)
print("main after sleep0")
