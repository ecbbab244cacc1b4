//! The Lua scripts, each sent by its hash; the caps scripts share `caps_lib.lua`.

use ::redis::Script;

pub(super) struct Scripts {
    pub caps_room: Script,
    pub reserve: Script,
    pub release: Script,
    pub commit: Script,
    pub seed: Script,
    pub idempotency_begin: Script,
    pub idempotency_complete: Script,
    pub rate_limit: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        macro_rules! caps {
            ($file:literal) => {
                Script::new(concat!(include_str!("caps_lib.lua"), include_str!($file)))
            };
        }
        Scripts {
            caps_room: caps!("caps_room.lua"),
            reserve: caps!("reserve.lua"),
            release: caps!("release.lua"),
            commit: caps!("commit.lua"),
            seed: caps!("seed.lua"),
            idempotency_begin: Script::new(include_str!("idempotency_begin.lua")),
            idempotency_complete: Script::new(include_str!("idempotency_complete.lua")),
            rate_limit: Script::new(include_str!("rate_limit.lua")),
        }
    }

    pub fn all(&self) -> [&Script; 8] {
        [
            &self.caps_room,
            &self.reserve,
            &self.release,
            &self.commit,
            &self.seed,
            &self.idempotency_begin,
            &self.idempotency_complete,
            &self.rate_limit,
        ]
    }
}
