//! `/watch/{id}`: the watch page with the video's link-preview tags (Open Graph, Twitter card)
//! rendered into it, for chat apps that read the HTML without running scripts. Only a public
//! video shows itself there; a private or unknown one gets generic tags.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use vshare_attributes::Kind;

use super::state::{AppState, AppStateRef};
use crate::db::{Video, VideoState, Visibility};
use crate::web::{PageMeta, watch_page};

pub async fn watch(State(st): AppStateRef, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let meta = match st.db.get_video(&id).await {
        Ok(Some(v)) if v.visibility == Visibility::Public => Some(page_meta(&st, v)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(video = %id, "watch page: {e:#}");
            None
        }
    };
    watch_page(meta.as_ref(), &headers)
}

fn page_meta(st: &AppState, v: Video) -> PageMeta {
    let v = st.videos.with_live_record(v);
    let title = if v.title.is_empty() {
        format!("Video {}", v.id)
    } else {
        v.title.clone()
    };
    let live = v.state == VideoState::Live;
    let mp4 = v
        .attributes
        .iter()
        .find(|r| r.kind == Kind::Vod && r.format == "mp4");
    let description = match (live, mp4) {
        (true, _) => "Live now on vshare".to_string(),
        (false, Some(r)) => {
            let s = r.duration_ms / 1000;
            format!("Recording, {}:{:02}, on vshare", s / 60, s % 60)
        }
        (false, None) => "A video on vshare".to_string(),
    };
    let max_width = st.videos.posters().max_width;
    let image = v
        .attributes
        .iter()
        .find(|r| !r.poster.is_empty() && r.width > 0 && r.height > 0)
        .map(|r| {
            let (w, h) = vshare_transcode::fit_width(r.width, r.height, max_width);
            (r.poster.clone(), w, h)
        });
    let video = if live {
        v.attributes
            .iter()
            .find(|r| r.kind == Kind::Live)
            .map(|r| (r.url.clone(), super::M3U8))
    } else {
        mp4.map(|r| (r.url.clone(), "video/mp4"))
    };
    PageMeta {
        title,
        description,
        url: format!("{}/watch/{}", st.videos.public_url(), v.id),
        image,
        video,
    }
}
