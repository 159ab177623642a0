//! Adding a query to every URI of a playlist, so that a player which follows them carries it
//! (the server uses it for the signature of a private video's link). A text transform over any
//! HLS playlist, media or multivariant, live or VOD.

/// `uri` with `query` added (after `?`, or `&` when it has a query already).
pub fn uri_with_query(uri: &str, query: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// Adds `query` to every URI of an HLS playlist: URI lines, and the quoted `URI="…"` attribute
/// of tags (EXT-X-MAP, EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-RENDITION-REPORT, EXT-X-MEDIA;
/// RFC 8216bis §4). Line ends stay as they were.
pub fn playlist_with_query(text: &str, query: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.split_inclusive('\n') {
        let (body, end) = line.split_at(line.trim_end_matches(['\r', '\n']).len());
        if body.starts_with('#') {
            let mut rest = body;
            while let Some(i) = rest.find("URI=\"") {
                let start = i + 5;
                out.push_str(&rest[..start]);
                rest = &rest[start..];
                match rest.find('"') {
                    Some(j) => {
                        out.push_str(&uri_with_query(&rest[..j], query));
                        rest = &rest[j..];
                    }
                    None => break,
                }
            }
            out.push_str(rest);
        } else if body.trim().is_empty() {
            out.push_str(body);
        } else {
            out.push_str(&uri_with_query(body.trim(), query));
        }
        out.push_str(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_carries_the_query() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\nseg0.m4s\n\
                    #EXT-X-PART:DURATION=0.33,URI=\"part1.0.m4s\",INDEPENDENT=YES\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.1.m4s\"\n\
                    #EXT-X-RENDITION-REPORT:URI=\"../240p/index.m3u8\",LAST-MSN=1\n\
                    240p/index.m3u8?x=1\n\n#EXT-X-ENDLIST\n";
        let out = playlist_with_query(text, "exp=9&sig=ab");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4?exp=9&sig=ab\"\n#EXTINF:2.0,\nseg0.m4s?exp=9&sig=ab\n\
             #EXT-X-PART:DURATION=0.33,URI=\"part1.0.m4s?exp=9&sig=ab\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part1.1.m4s?exp=9&sig=ab\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"../240p/index.m3u8?exp=9&sig=ab\",LAST-MSN=1\n\
             240p/index.m3u8?x=1&exp=9&sig=ab\n\n#EXT-X-ENDLIST\n"
        );
        // CRLF line ends stay as they were.
        assert_eq!(
            playlist_with_query("#EXTM3U\r\na.m4s\r\n", "q=1"),
            "#EXTM3U\r\na.m4s?q=1\r\n"
        );
    }

    #[test]
    fn a_tag_with_an_unclosed_uri_is_left_as_it_is() {
        assert_eq!(
            playlist_with_query("#EXT-X-MAP:URI=\"init.mp4\n", "q=1"),
            "#EXT-X-MAP:URI=\"init.mp4\n"
        );
        assert_eq!(uri_with_query("a.m4s", "q=1"), "a.m4s?q=1");
        assert_eq!(uri_with_query("a.m4s?x=2", "q=1"), "a.m4s?x=2&q=1");
    }
}
