//! A greenlet's identity: `name`/`set_name`, `minimal_ident`, `Display` and
//! `Debug`, `current()`, the parent's ident, the spawn site and
//! `GreenletRef::downcast`.

#[allow(unreachable_pub)] // support/mod.rs is shared; its `pub` items are crate-local here.
mod support;

use std::cell::RefCell;
use std::panic::{self, Location};
use std::rc::Rc;
use std::time::Duration;

use green_core::{
    current, run, sleep, spawn, spawn_after_local, spawn_later, spawn_raw, yield_now, Builder,
    Greenlet, GreenletRef,
};
use support::panic_message;

/// Asserts that `site` is `line` of this file.
#[track_caller]
fn assert_site(site: &Location<'_>, line: u32) {
    assert!(
        site.file().ends_with("greenlet_identity.rs"),
        "spawn site in {}",
        site.file()
    );
    assert_eq!(site.line(), line, "spawn site {site}");
}

#[test]
fn the_default_name_is_greenlet_dash_minimal_ident() {
    run(|| {
        let g = spawn(|| ());
        assert_eq!(g.name(), format!("Greenlet-{}", g.minimal_ident()));
        assert_eq!(g.as_ref().name(), g.name());
        g.join();
    });
}

#[test]
fn builder_name_and_set_name_rename_it_everywhere() {
    run(|| {
        let g = Builder::new()
            .name("alpha")
            .spawn(|| {
                let first = current().name();
                sleep(Duration::from_millis(20));
                (first, current().name())
            })
            .unwrap();
        assert_eq!(g.name(), "alpha");
        yield_now();
        g.set_name("beta");
        assert_eq!(g.name(), "beta");
        assert_eq!(g.as_ref().name(), "beta");
        assert_eq!(g.get().unwrap(), ("alpha".to_string(), "beta".to_string()));
        // GreenletRef::set_name renames the same greenlet.
        g.as_ref().set_name(String::from("gamma"));
        assert_eq!(g.name(), "gamma");
    });
}

#[test]
fn a_greenlet_can_rename_itself_through_current() {
    run(|| {
        let g = spawn(|| current().set_name("self-named"));
        g.join();
        assert_eq!(g.name(), "self-named");
    });
}

#[test]
fn display_and_debug_show_the_name() {
    run(|| {
        let g = Builder::new().name("shown").build(|| ()).unwrap();
        assert!(format!("{g}").contains("shown"), "{g}");
        assert!(format!("{g:?}").contains("shown"), "{g:?}");
        assert!(format!("{}", g.as_ref()).contains("shown"));
        assert!(format!("{:?}", g.as_ref()).contains("shown"));
        let unnamed = spawn(|| ());
        let default = unnamed.name();
        assert!(format!("{unnamed}").contains(&default), "{unnamed}");
        assert!(format!("{unnamed:?}").contains(&default), "{unnamed:?}");
        unnamed.join();
        assert!(
            format!("{unnamed}").contains(&default),
            "after death: {unnamed}"
        );
    });
}

#[test]
fn minimal_ident_is_small_sequential_and_stable() {
    run(|| {
        let gs: Vec<Greenlet<()>> = (0..5).map(|_| spawn(|| ())).collect();
        let idents: Vec<usize> = gs.iter().map(Greenlet::minimal_ident).collect();
        assert!(idents[0] < 4, "not small in a fresh hub: {idents:?}");
        for pair in idents.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "not sequential: {idents:?}");
        }
        let again: Vec<usize> = gs.iter().map(Greenlet::minimal_ident).collect();
        assert_eq!(idents, again);
        for g in &gs {
            g.join();
        }
        let after: Vec<usize> = gs.iter().map(Greenlet::minimal_ident).collect();
        assert_eq!(idents, after, "a dead greenlet keeps its ident");
    });
}

#[test]
fn minimal_ident_is_reused_after_death() {
    run(|| {
        let first = spawn(|| ());
        let second = spawn(|| sleep(Duration::from_secs(10)));
        let (a, b) = (first.minimal_ident(), second.minimal_ident());
        first.join();
        let third = spawn(|| ());
        assert_eq!(
            third.minimal_ident(),
            a,
            "the dead greenlet's ident is reused"
        );
        assert_eq!(second.minimal_ident(), b);
        let fourth = spawn(|| ());
        assert_ne!(
            fourth.minimal_ident(),
            b,
            "a live greenlet's ident is not reused"
        );
        assert_ne!(fourth.minimal_ident(), a);
        second.kill();
        third.join();
        fourth.join();
    });
}

#[test]
fn idents_stay_small_when_finished_greenlets_are_named() {
    run(|| {
        // Asking a finished greenlet for its name (as a log line would) must
        // not use up an ident for good.
        for _ in 0..100 {
            let g = spawn(|| ());
            g.join();
            let _ = g.name();
        }
        let g = spawn(|| ());
        assert!(g.minimal_ident() < 4, "ident {}", g.minimal_ident());
        g.join();
    });
}

#[test]
fn current_in_the_main_greenlet_is_main() {
    run(|| {
        let main = current();
        assert!(main.is_main());
        assert_eq!(main.name(), "main");
        assert!(main.ptr_eq(&current()));
        assert!(!main.dead());
        assert!(main.downcast::<()>().is_none(), "main has no typed handle");
    });
}

#[test]
fn current_inside_a_greenlet_is_that_greenlet() {
    run(|| {
        let inside: Rc<RefCell<Option<GreenletRef>>> = Rc::default();
        let i = Rc::clone(&inside);
        let g = spawn(move || {
            let me = current();
            assert!(!me.is_main());
            *i.borrow_mut() = Some(me);
            42u64
        });
        g.join();
        let me = inside.borrow_mut().take().expect("it ran");
        assert!(me.ptr_eq(&g.as_ref()));
        assert!(!me.ptr_eq(&current()));
        assert!(me.dead() && me.successful() && me.exception().is_none());
        assert_eq!(me.minimal_ident(), g.minimal_ident());
    });
}

#[test]
fn current_differs_between_greenlets() {
    run(|| {
        let a = spawn(current);
        let b = spawn(current);
        let (a_ref, b_ref) = (a.get().unwrap(), b.get().unwrap());
        assert!(a_ref.ptr_eq(&a.as_ref()));
        assert!(b_ref.ptr_eq(&b.as_ref()));
        assert!(!a_ref.ptr_eq(&b_ref));
    });
}

#[test]
fn current_inside_a_rawlink_panics_with_a_clear_message() {
    run(|| {
        let message = Rc::new(RefCell::new(None));
        let m = Rc::clone(&message);
        let g = spawn(|| ());
        g.rawlink(move |_| {
            let result = panic::catch_unwind(current);
            *m.borrow_mut() = Some(result.map(|_| ()).map_err(|p| panic_message(&*p)));
        });
        g.join();
        sleep(Duration::from_millis(5));
        let result = message.borrow_mut().take().expect("the rawlink ran");
        let err = result.expect_err("current() inside the hub panics");
        assert!(err.contains("hub"), "{err}");
    });
}

#[test]
fn parent_ident_names_the_spawning_greenlet() {
    run(|| {
        let from_main = spawn(|| ());
        assert_eq!(from_main.parent_ident(), Some(current().minimal_ident()));
        let outer = spawn(|| {
            let inner = spawn(|| ());
            let parent = inner.parent_ident();
            inner.join();
            (parent, current().minimal_ident())
        });
        let (parent, outer_ident) = outer.get().unwrap();
        assert_eq!(parent, Some(outer_ident));
        assert_eq!(outer_ident, outer.minimal_ident());
        from_main.join();
    });
}

#[test]
fn parent_ident_is_none_once_the_parent_is_gone() {
    run(|| {
        let child = Rc::new(RefCell::new(None));
        let c = Rc::clone(&child);
        spawn_raw(move || {
            *c.borrow_mut() = Some(spawn(|| sleep(Duration::from_millis(20))));
        });
        sleep(Duration::from_millis(5));
        let child = child.borrow_mut().take().expect("the spawner ran");
        assert_eq!(child.parent_ident(), None);
        child.join();
    });
}

#[test]
fn parent_ident_is_none_once_the_parent_has_died() {
    run(|| {
        // The parent's handle is kept, but it is dead: its ident may already
        // belong to another greenlet.
        let parent = spawn(|| spawn(|| sleep(Duration::from_millis(20))));
        let child = parent.get().unwrap();
        assert!(parent.dead());
        assert_eq!(child.parent_ident(), None, "the parent is not alive");
        child.join();
    });
}

#[test]
fn spawn_site_is_the_line_of_the_spawn_call() {
    run(|| {
        let (g, line) = (spawn(|| ()), line!());
        assert_site(g.spawn_site(), line);
        assert_site(g.as_ref().spawn_site(), line);
        let (g, line) = (spawn_later(Duration::ZERO, || ()), line!());
        assert_site(g.spawn_site(), line);
        let (g, line) = (spawn_after_local(Duration::ZERO, || ()), line!());
        assert_site(g.spawn_site(), line);
        let (g, line) = (Greenlet::new(|| ()), line!());
        assert_site(g.spawn_site(), line);
        let (g, line) = (Builder::new().spawn(|| ()).unwrap(), line!());
        assert_site(g.spawn_site(), line);
        let (g, line) = (Builder::new().build(|| ()).unwrap(), line!());
        assert_site(g.spawn_site(), line);
        sleep(Duration::from_millis(5));
    });
}

#[test]
fn spawn_raw_records_its_site_too() {
    run(|| {
        let site = Rc::new(RefCell::new(None));
        let s = Rc::clone(&site);
        let record = move || *s.borrow_mut() = Some(current().spawn_site());
        let ((), line) = (spawn_raw(record), line!());
        sleep(Duration::from_millis(5));
        let site = site.borrow_mut().take().expect("it ran");
        assert_site(site, line);
    });
}

#[test]
fn downcast_gives_the_typed_handle_only_for_the_right_type() {
    run(|| {
        let g = spawn(|| String::from("typed"));
        let r = g.as_ref();
        let typed = r.downcast::<String>().expect("the right type");
        assert!(typed.as_ref().ptr_eq(&r));
        assert!(r.downcast::<u32>().is_none());
        assert!(r.downcast::<&str>().is_none());
        assert_eq!(typed.get().unwrap(), "typed");
        assert_eq!(g.value().as_deref(), Some("typed"));
    });
}

#[test]
fn greenlet_ref_reports_the_same_state_as_the_handle() {
    run(|| {
        let ok = spawn(|| 1);
        let bad = spawn(|| -> i32 { panic!("bad (expected by the test)") });
        let (ok_ref, bad_ref) = (ok.as_ref(), bad.as_ref());
        assert!(!ok_ref.dead() && !ok_ref.is_main());
        ok_ref.join();
        bad_ref.join();
        assert!(ok_ref.dead() && ok_ref.successful() && ok_ref.exception().is_none());
        assert!(bad_ref.dead() && !bad_ref.successful());
        assert_eq!(
            bad_ref.exception().map(|e| e.kind()),
            bad.exception().map(|e| e.kind())
        );
        assert!(!ok_ref.ptr_eq(&bad_ref));
        assert!(ok_ref.ptr_eq(&ok_ref.clone()));
    });
}
