//! Round trips of every table on SQLite and, when a test PostgreSQL is set, on PostgreSQL.

use vshare_testkit::db::{POSTGRES_SKIPPED, fresh_postgres, sqlite_url};

use super::*;

async fn keys_videos_segments_round_trip(url: &str) {
    let db = Db::open(url).await.expect("open");
    // Opening again runs no migration twice.
    let db2 = Db::open(url).await.expect("reopen");
    let (key, secret) = db
        .create_key("phone")
        .await
        .expect("create")
        .expect("new name");
    assert_eq!(
        db2.find_key(&secret).await.expect("find").map(|k| k.id),
        Some(key.id.clone())
    );
    assert!(db.find_key("wrong").await.expect("find").is_none());
    let v = Video::new_live(&random_id(12), &key.id, "t");
    db.insert_video(&v).await.expect("insert");
    let seg = SegmentRow {
        msn: 0,
        duration_us: 2_000_000,
        size: 10,
        init_name: "init.mp4".into(),
    };
    db.add_segment(&v.id, "", &seg).await.expect("seg");
    db.add_segment(&v.id, "240p", &seg)
        .await
        .expect("seg of a rendition, same msn");
    db.replace_segments(
        &v.id,
        "",
        &[
            SegmentRow {
                msn: 0,
                duration_us: 1,
                size: 2,
                init_name: "init.mp4".into(),
            },
            SegmentRow {
                msn: 1,
                duration_us: 3,
                size: 4,
                init_name: "init1.mp4".into(),
            },
        ],
    )
    .await
    .expect("replace");
    let segs = db.segments(&v.id, "").await.expect("segs");
    assert_eq!(
        segs.iter()
            .map(|s| s.init_name.as_str())
            .collect::<Vec<_>>(),
        ["init.mp4", "init1.mp4"]
    );
    assert_eq!(db.segments(&v.id, "240p").await.expect("segs"), vec![seg]);
    assert_eq!(
        db.list_videos(Some(VideoState::Live))
            .await
            .expect("list")
            .len(),
        1
    );
    // The webhook goes to the proxy's outbox in the same transaction.
    let outbox = vshare_proxy::Store::on(db.database().clone())
        .await
        .expect("proxy tables");
    let hook = crate::webhook::Hook {
        event: "video.ready",
        url: "http://127.0.0.1:9/hook".into(),
    };
    db.update_video(
        &v.id,
        VideoState::Ready,
        &[],
        Some("2026-01-01T00:00:00Z"),
        Some(hook),
    )
    .await
    .expect("update");
    assert_eq!(
        db.latest_video_for_key(&key.id)
            .await
            .expect("latest")
            .map(|v| v.state),
        Some(VideoState::Ready)
    );
    assert_eq!(
        db.videos_ended_since(VideoState::Ready, "2025-12-31T00:00:00Z")
            .await
            .expect("since")
            .len(),
        1
    );
    assert!(
        db.videos_ended_since(VideoState::Ready, "2026-01-02T00:00:00Z")
            .await
            .expect("since")
            .is_empty()
    );
    let rows = outbox
        .notifications(Some(&v.id), None)
        .await
        .expect("outbox");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].address, "http://127.0.0.1:9/hook");
    assert_eq!(rows[0].source, key.id);
    let payload = outbox.payload(&rows[0].event_id).await.expect("payload");
    assert_eq!(payload.kind, "video.ready");
    let body: serde_json::Value =
        serde_json::from_str(payload.body.as_deref().expect("body")).expect("json");
    assert_eq!(body["event"], "video.ready");
    assert_eq!(body["video"]["state"], "ready");
    assert!(db.revoke_key(&key.id).await.expect("revoke"));
    assert!(db.find_key(&secret).await.expect("find").is_none());
}

async fn upload_tokens(url: &str) {
    let db = Db::open(url).await.expect("open");
    let (key, secret) = db
        .create_key("phone")
        .await
        .expect("create")
        .expect("new name");
    let (token, expires_at) = db
        .create_upload_token(&key.id, std::time::Duration::from_secs(3600), false)
        .await
        .expect("token");
    assert!(expires_at > chrono::Utc::now().timestamp_millis() + 3_500_000);
    let found = |t: String| {
        let db = db.clone();
        async move { db.find_key_for_token(&t).await.expect("find").map(|k| k.id) }
    };
    assert_eq!(found(token.clone()).await, Some(key.id.clone()));
    assert_eq!(found(secret.clone()).await, Some(key.id.clone()));
    assert_eq!(found("ut-unknown".into()).await, None);
    // The stored form is a hash, never the token.
    let stored: Vec<String> = sqlx::query("SELECT token_hash FROM upload_tokens")
        .fetch_all(db.database().pool())
        .await
        .expect("rows")
        .iter()
        .map(|r| r.try_get("token_hash").expect("hash"))
        .collect();
    assert!(!stored.contains(&token));
    // A short-lived token is refused once expired.
    let (short, _) = db
        .create_upload_token(&key.id, std::time::Duration::from_millis(50), false)
        .await
        .expect("token");
    assert_eq!(found(short.clone()).await, Some(key.id.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    assert_eq!(found(short).await, None);
    // Revoking the key revokes its tokens.
    assert!(db.revoke_key(&key.id).await.expect("revoke"));
    assert_eq!(found(token).await, None);
}

async fn accounts_sessions_visibility_deletion(url: &str) {
    let db = Db::open(url).await.expect("open");
    let crate::db::CreateUser::Created(user, key, secret) = db
        .create_user("alice", "$argon2id$stand-in", None)
        .await
        .expect("create")
    else {
        panic!("a new name was refused");
    };
    assert!(
        matches!(
            db.create_user("alice", "x", None).await.expect("create"),
            crate::db::CreateUser::Taken
        ),
        "a taken name is refused"
    );
    // Users and keys share one namespace: a key's name or id cannot become a username, nor a
    // username a key's name.
    let (admin_key, _) = db
        .create_key("studio")
        .await
        .expect("key")
        .expect("new name");
    for name in ["studio", admin_key.id.as_str()] {
        assert!(
            matches!(
                db.create_user(name, "x", None).await.expect("create"),
                crate::db::CreateUser::Taken
            ),
            "{name} was taken by a user"
        );
    }
    assert!(db.create_key("alice").await.expect("key").is_none());
    assert!(db.create_key("studio").await.expect("key").is_none());
    assert!(matches!(
        db.create_user("invitee", "x", Some("no-such-invite"))
            .await
            .expect("create"),
        crate::db::CreateUser::BadInvite
    ));
    let invite = db.create_invite().await.expect("invite");
    assert!(matches!(
        db.create_user("invitee", "x", Some(&invite))
            .await
            .expect("create"),
        crate::db::CreateUser::Created(..)
    ));
    assert!(
        matches!(
            db.create_user("invitee2", "x", Some(&invite))
                .await
                .expect("create"),
            crate::db::CreateUser::BadInvite
        ),
        "an invite is used once"
    );
    let found = db.find_key(&secret).await.expect("find").expect("key");
    assert_eq!(found.user_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(
        db.user_key(&user.id).await.expect("key").map(|k| k.id),
        Some(key.id.clone())
    );
    let (u, hash) = db
        .user_by_name("alice")
        .await
        .expect("by name")
        .expect("user");
    assert_eq!(
        (u.id.as_str(), hash.as_str()),
        (user.id.as_str(), "$argon2id$stand-in")
    );
    assert!(db.user_by_name("bob").await.expect("by name").is_none());

    let (token, _) = db
        .create_session(&user.id, std::time::Duration::from_secs(60))
        .await
        .expect("session");
    assert_eq!(
        db.session_user(&token).await.expect("s").map(|u| u.id),
        Some(user.id.clone())
    );
    db.delete_session(&token).await.expect("delete");
    assert!(db.session_user(&token).await.expect("s").is_none());
    let (short, _) = db
        .create_session(&user.id, std::time::Duration::from_millis(30))
        .await
        .expect("session");
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert!(
        db.session_user(&short).await.expect("s").is_none(),
        "expired"
    );

    // Rotation: a new secret for the same key id; the old secret and tokens stop working.
    let (token, _) = db
        .create_upload_token(&key.id, std::time::Duration::from_secs(60), false)
        .await
        .expect("token");
    let new_secret = db.rotate_key(&key.id).await.expect("rotate");
    assert!(db.find_key(&secret).await.expect("find").is_none());
    assert!(db.find_key_for_token(&token).await.expect("find").is_none());
    assert_eq!(
        db.find_key(&new_secret).await.expect("find").map(|k| k.id),
        Some(key.id.clone())
    );

    let mut v = Video::new_live(&random_id(12), &key.id, "");
    db.insert_video(&v).await.expect("insert");
    let seg = SegmentRow {
        msn: 0,
        duration_us: 1,
        size: 1,
        init_name: "init.mp4".into(),
    };
    db.add_segment(&v.id, "", &seg).await.expect("seg");
    assert_eq!(
        db.mark_deleted(&v.id).await.expect("mark"),
        MarkDeleted::Busy(VideoState::Live)
    );
    assert_eq!(
        db.mark_deleted("nope").await.expect("mark"),
        MarkDeleted::NotFound
    );
    db.update_video(&v.id, VideoState::Ready, &[], None, None)
        .await
        .expect("ready");
    assert!(
        db.set_visibility(&v.id, Visibility::Private)
            .await
            .expect("private")
    );
    let access = db
        .video_access(&v.id)
        .await
        .expect("access")
        .expect("exists");
    assert_eq!(access.visibility, Visibility::Private);
    assert_eq!(access.owner.as_deref(), Some(user.id.as_str()));
    assert_eq!(db.list_videos(None).await.expect("list").len(), 1);
    assert!(db.list_public_videos(None).await.expect("list").is_empty());
    assert_eq!(db.user_videos(&user.id).await.expect("mine").len(), 1);
    v.id = random_id(12);
    v.created_at = now_rfc3339();
    db.insert_video(&v).await.expect("insert second");
    let mine = db.user_videos(&user.id).await.expect("mine");
    assert_eq!(
        mine.first().map(|x| x.id.as_str()),
        Some(v.id.as_str()),
        "newest first"
    );

    let first = mine[1].id.clone();
    assert_eq!(
        db.mark_deleted(&first).await.expect("mark"),
        MarkDeleted::Marked
    );
    assert!(db.get_video(&first).await.expect("get").is_none());
    assert!(db.video_access(&first).await.expect("access").is_none());
    assert_eq!(db.user_videos(&user.id).await.expect("mine").len(), 1);
    assert_eq!(
        db.deleted_videos().await.expect("deleted"),
        vec![first.clone()]
    );
    db.purge_video(&first).await.expect("purge");
    assert!(db.deleted_videos().await.expect("deleted").is_empty());
    assert!(db.segments(&first, "").await.expect("segs").is_empty());

    let s1 = db.server_secret("link").await.expect("secret");
    let s2 = db.server_secret("link").await.expect("secret");
    assert_eq!(s1, s2);
    assert!(s1.len() >= 40);
}

/// Video servers sharing the database each finish only their own interrupted recordings (and
/// rows from before the instance column); finished videos are nobody's to recover.
async fn unfinished_videos_by_instance(url: &str) {
    let db = Db::open(url).await.expect("open");
    let (key, _) = db.create_key("k").await.expect("key").expect("new key");
    let mut ids = Vec::new();
    for (instance, state) in [
        ("video-a", VideoState::Live),
        ("video-b", VideoState::Live),
        ("", VideoState::Live),
        ("video-a", VideoState::Finishing),
        ("video-a", VideoState::Ready),
    ] {
        let mut v = Video::new_live(&random_id(12), &key.id, "t");
        v.instance_id = instance.to_string();
        db.insert_video(&v).await.expect("insert");
        if state != VideoState::Live {
            db.update_video(&v.id, state, &[], None, None)
                .await
                .expect("update");
        }
        ids.push(v.id);
        // Distinct creation times keep the order below fixed.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let own = |instance: &'static str| {
        let db = db.clone();
        async move {
            db.unfinished_videos(instance)
                .await
                .expect("unfinished")
                .into_iter()
                .map(|v| (v.id, v.instance_id))
                .collect::<Vec<_>>()
        }
    };
    let a = own("video-a").await;
    assert_eq!(
        a,
        vec![
            (ids[0].clone(), "video-a".to_string()),
            (ids[2].clone(), String::new()),
            (ids[3].clone(), "video-a".to_string()),
        ]
    );
    let b = own("video-b").await;
    assert_eq!(
        b,
        vec![
            (ids[1].clone(), "video-b".to_string()),
            (ids[2].clone(), String::new()),
        ]
    );
    assert_eq!(
        db.get_video(&ids[1])
            .await
            .expect("get")
            .map(|v| v.instance_id),
        Some("video-b".to_string())
    );
}

/// Runs a scenario on a fresh SQLite file and on PostgreSQL (when the test setup has one).
macro_rules! on_both_databases {
    ($($sqlite:ident, $postgres:ident => $scenario:ident;)*) => {$(
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().expect("tempdir");
            $scenario(&sqlite_url(dir.path(), "t.db")).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let Some(url) = fresh_postgres("vshare_test").await else {
                eprintln!("{POSTGRES_SKIPPED}");
                return;
            };
            $scenario(&url).await;
        }
    )*};
}

on_both_databases! {
    accounts_on_sqlite, accounts_on_postgres => accounts_sessions_visibility_deletion;
    upload_tokens_on_sqlite, upload_tokens_on_postgres => upload_tokens;
    round_trip_on_sqlite, round_trip_on_postgres => keys_videos_segments_round_trip;
    unfinished_by_instance_on_sqlite, unfinished_by_instance_on_postgres => unfinished_videos_by_instance;
}
