//! gevent's Greenlet introspection that green had lacked: spawn callbacks,
//! the spawning greenlet as a weak handle, and spawn-tree locals shared by a
//! greenlet and its descendants.

use std::cell::RefCell;
use std::rc::Rc;

use green_core::{
    add_spawn_callback, current, remove_spawn_callback, spawn, spawn_later, spawn_tree_locals,
    Builder, Greenlet,
};

#[test]
fn spawn_callbacks_run_for_every_start_in_order_until_removed() {
    green_core::run(|| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let (l1, l2) = (log.clone(), log.clone());
        let first = add_spawn_callback(move |g| l1.borrow_mut().push(format!("1:{}", g.name())));
        let second = add_spawn_callback(move |g| l2.borrow_mut().push(format!("2:{}", g.name())));
        let a = Builder::new().name("a").spawn(|| ()).unwrap();
        let b = Builder::new().name("b").build(|| ()).unwrap();
        assert_eq!(log.borrow().len(), 2, "built but not started: no callback");
        b.start_later(std::time::Duration::from_millis(1));
        assert!(remove_spawn_callback(first));
        assert!(!remove_spawn_callback(first));
        let c = Builder::new().name("c").spawn(|| ()).unwrap();
        assert!(remove_spawn_callback(second));
        let d = spawn_later(std::time::Duration::ZERO, || ());
        green_core::joinall(&[a, b, c, d]);
        assert_eq!(*log.borrow(), ["1:a", "2:a", "1:b", "2:b", "2:c"]);
    });
}

#[test]
fn a_spawn_callback_may_spawn_and_remove_itself() {
    green_core::run(|| {
        let spawned = Rc::new(RefCell::new(Vec::<Greenlet<()>>::new()));
        let id_slot = Rc::new(RefCell::new(None));
        let (s, slot) = (spawned.clone(), id_slot.clone());
        let id = add_spawn_callback(move |_| {
            if let Some(id) = slot.borrow_mut().take() {
                remove_spawn_callback(id);
                s.borrow_mut().push(spawn(|| ()));
            }
        });
        *id_slot.borrow_mut() = Some(id);
        spawn(|| ()).join();
        assert_eq!(spawned.borrow().len(), 1);
        let more: Vec<_> = spawned.borrow_mut().drain(..).collect();
        green_core::joinall(&more);
    });
}

#[test]
fn the_spawning_greenlet_is_a_weak_handle() {
    green_core::run(|| {
        let outer = spawn(|| {
            let inner = spawn(|| ());
            let spawner = inner.spawning_greenlet().expect("its spawner is alive");
            assert!(spawner.ptr_eq(&current()));
            inner
        });
        let inner = outer.get().unwrap();
        assert!(outer.spawning_greenlet().unwrap().is_main());
        drop(outer); // the last handle to the spawner's record
        assert!(
            inner.spawning_greenlet().is_none(),
            "weak: the spawner is gone"
        );
    });
}

#[derive(Debug, PartialEq)]
struct Tenant(&'static str);

#[test]
fn tree_locals_are_shared_down_the_tree_and_not_across_trees() {
    green_core::run(|| {
        let root = spawn(|| {
            spawn_tree_locals().insert(Tenant("acme"));
            let child = spawn(|| {
                let grandchild = spawn(|| spawn_tree_locals().get::<Tenant>());
                grandchild.get().unwrap()
            });
            let fresh = Builder::new()
                .new_spawn_tree()
                .spawn(|| spawn_tree_locals().get::<Tenant>())
                .unwrap();
            (child.get().unwrap(), fresh.get().unwrap())
        });
        let (inherited, fresh) = root.get().unwrap();
        assert_eq!(inherited.as_deref(), Some(&Tenant("acme")));
        assert_eq!(fresh, None, "a new tree starts empty");
        // Each child of the main greenlet is a tree of its own (gevent).
        let sibling = spawn(|| spawn_tree_locals().get::<Tenant>());
        assert_eq!(sibling.get().unwrap(), None);
        assert_eq!(spawn_tree_locals().get::<Tenant>(), None, "main's own tree");
    });
}

#[test]
fn a_value_set_by_a_descendant_is_seen_by_the_ancestor() {
    green_core::run(|| {
        let root = spawn(|| {
            let child = spawn(|| {
                spawn_tree_locals().insert(7_u32);
            });
            child.join();
            spawn_tree_locals().get::<u32>().map(|v| *v)
        });
        assert_eq!(root.get().unwrap(), Some(7));
        let locals = root.spawn_tree_locals();
        assert_eq!(locals.remove::<u32>().as_deref(), Some(&7));
        assert_eq!(locals.get::<u32>(), None);
        assert!(locals.ptr_eq(&root.as_ref().spawn_tree_locals()));
    });
}
