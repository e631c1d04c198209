# Rule 6: two nested zero Timeouts started in the same pass expire together;
# the outer one (started first) is the one raised, and the inner block is
# left by it.
import gevent
from gevent import Timeout

outer = Timeout(0)
outer.start()
try:
    inner = Timeout(0)
    inner.start()
    try:
        gevent.sleep(10)
    except Timeout as e:
        print("inner handler: outer?", e is outer, "inner?", e is inner)
        raise
    finally:
        inner.cancel()
except Timeout as e:
    print("outer handler: outer?", e is outer, "inner?", e is inner)
finally:
    outer.cancel()
gevent.sleep(0)
print("main done")
