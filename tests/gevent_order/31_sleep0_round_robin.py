# Rule 1 basis: sleep(0) requeues at the tail, so three greenlets that each
# sleep(0) three times interleave strictly A B C, A B C, ... and main,
# which queued its resume after spawning them, resumes after their first
# round.
import gevent

def w(name):
    for i in range(3):
        print(name, i)
        gevent.sleep(0)

gs = [gevent.spawn(w, n) for n in "ABC"]
gevent.sleep(0)
print("main after sleep0")
gevent.joinall(gs)
print("main joined all")
