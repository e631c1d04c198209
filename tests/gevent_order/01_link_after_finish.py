# Rule 1: a link added to a greenlet whose links entry has already run (or
# that had no links when it finished) is not run on the spot; it becomes a
# new queue entry, and a sleep(0) taken right after adding it resumes only
# after the link ran.
import gevent

g = gevent.spawn(lambda: print("G runs"))
gevent.sleep(0)
print("main after first sleep0, G dead:", g.dead)
g.link(lambda src: print("link G"))
print("main linked")
gevent.sleep(0)
print("main after second sleep0")
