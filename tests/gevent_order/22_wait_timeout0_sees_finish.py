# Rule 6: wait(timeout=0) on a greenlet that is only spawned still returns
# it as done: its start and its links entry are callbacks of the pass,
# which all run before the zero timer.
import gevent

g = gevent.spawn(lambda: print("G runs"))
done = gevent.wait([g], timeout=0)
print("main wait returned", len(done), "done")
h = gevent.spawn(gevent.sleep, 10)
done = gevent.wait([h], timeout=0)
print("main wait on sleeper returned", len(done), "done")
h.kill()
