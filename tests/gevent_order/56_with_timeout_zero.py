# Rule 6: with_timeout(0, f) lets f finish when f only does sleep(0)s,
# and interrupts it at its first real block otherwise.
import gevent
from gevent import Timeout

def hops():
    for i in range(3):
        print("hops", i)
        gevent.sleep(0)
    return "hops done"

def blocks():
    print("blocks starts")
    gevent.sleep(0)
    print("blocks resumed")
    gevent.sleep(10)
    return "blocks done"

print("main got", gevent.with_timeout(0, hops))
print("main got", gevent.with_timeout(0, blocks, timeout_value="timed out"))
