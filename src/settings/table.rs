//! The machinery behind the settings table (`settings!` in `settings/mod.rs`): from one row
//! per setting come its GUC, its definition in PostgreSQL, its raw value read back, its
//! default, its bounds and its conversion into the field of `Settings` of the same name.
//!
//! A row: `name: FieldType = kind(arguments), "short description", "long description", conversion;`
//! - `text(default)` or `text(default, FLAG)`: a string; the default an `Option<&CStr>`;
//! - `int(default, min, max)` or `int(default, min, max, UNIT_x)`: an integer in that unit;
//! - `boolean(default)`;
//! - `choice(default)`: a `PostgresGucEnum`, which is also the field's type.
//!
//! The conversion takes the raw value (text trimmed to a `String`, an `i32`, a `bool`, the
//! enum) and returns `SyncResult<FieldType>`; an integer is checked against its bounds first,
//! so a conversion may rely on them.

use std::ffi::CStr;

macro_rules! settings {
    (@raw text $field:ty) => { Option<std::ffi::CString> };
    (@raw int $field:ty) => { i32 };
    (@raw boolean $field:ty) => { bool };
    (@raw choice $field:ty) => { $field };

    (@value text $field:ty) => { String };
    (@value $kind:ident $field:ty) => { settings!(@raw $kind $field) };

    (@boot text $field:ty; $default:expr $(, $flag:ident)?) => {
        pgrx::guc::GucSetting::<Option<std::ffi::CString>>::new($default)
    };
    (@boot int $field:ty; $default:expr, $min:expr, $max:expr $(, $unit:ident)?) => {
        pgrx::guc::GucSetting::<i32>::new($default)
    };
    (@boot boolean $field:ty; $default:expr) => { pgrx::guc::GucSetting::<bool>::new($default) };
    (@boot choice $field:ty; $default:expr) => { pgrx::guc::GucSetting::<$field>::new($default) };

    (@default text; $default:expr $(, $flag:ident)?) => {
        $crate::settings::table::text_value($default)
    };
    (@default int; $default:expr, $min:expr, $max:expr $(, $unit:ident)?) => { $default };
    (@default $kind:ident; $default:expr) => { $default };

    (@read text; $guc:expr) => {
        $crate::settings::table::text_value($guc.get().as_deref())
    };
    (@read $kind:ident; $guc:expr) => { $guc.get() };

    (@define text; $default:expr $(, $flag:ident)?; $name:ident, $guc:expr, $short:literal, $long:literal) => {
        pgrx::guc::GucRegistry::define_string_guc(
            settings!(@name $name), settings!(@c $short), settings!(@c $long), &$guc,
            pgrx::guc::GucContext::Suset,
            pgrx::guc::GucFlags::default() $(| pgrx::guc::GucFlags::$flag)?,
        )
    };
    (@define int; $default:expr, $min:expr, $max:expr $(, $unit:ident)?; $name:ident, $guc:expr, $short:literal, $long:literal) => {
        pgrx::guc::GucRegistry::define_int_guc(
            settings!(@name $name), settings!(@c $short), settings!(@c $long), &$guc, $min, $max,
            pgrx::guc::GucContext::Suset,
            pgrx::guc::GucFlags::default() $(| pgrx::guc::GucFlags::$unit)?,
        )
    };
    (@define boolean; $default:expr; $name:ident, $guc:expr, $short:literal, $long:literal) => {
        pgrx::guc::GucRegistry::define_bool_guc(
            settings!(@name $name), settings!(@c $short), settings!(@c $long), &$guc,
            pgrx::guc::GucContext::Suset, pgrx::guc::GucFlags::default(),
        )
    };
    (@define choice; $default:expr; $name:ident, $guc:expr, $short:literal, $long:literal) => {
        pgrx::guc::GucRegistry::define_enum_guc(
            settings!(@name $name), settings!(@c $short), settings!(@c $long), &$guc,
            pgrx::guc::GucContext::Suset, pgrx::guc::GucFlags::default(),
        )
    };

    (@bounds int; $default:expr, $min:expr, $max:expr $(, $unit:ident)?; $name:ident, $value:expr) => {
        $crate::settings::table::within_bounds(concat!("token_sync.", stringify!($name)), $value, $min, $max)
    };
    (@bounds $kind:ident; $($ignored:tt)*) => { $crate::error::SyncResult::Ok(()) };

    (@name $name:ident) => { settings!(@c concat!("token_sync.", stringify!($name))) };
    (@c $text:expr) => { const { $crate::settings::table::c_text(concat!($text, "\0")) } };

    ($(
        $name:ident: $field:ty = $kind:ident($($argument:tt)*), $short:literal, $long:literal, $convert:expr;
    )+) => {
        /// Every setting's name, as PostgreSQL knows it.
        pub const NAMES: &[&str] = &[$( concat!("token_sync.", stringify!($name)), )+];

        /// PostgreSQL's variables behind the settings, one per row of the table.
        #[allow(non_upper_case_globals)]
        mod gucs {
            use super::*;
            $(
                pub static $name: pgrx::guc::GucSetting<settings!(@raw $kind $field)> =
                    settings!(@boot $kind $field; $($argument)*);
            )+
        }

        fn define_settings() {
            $( settings!(@define $kind; $($argument)*; $name, gucs::$name, $short, $long); )+
        }

        /// Every setting as PostgreSQL holds it (text trimmed), before conversion.
        #[derive(Debug, Clone)]
        pub struct RawSettings {
            $( pub $name: settings!(@value $kind $field), )+
        }

        impl RawSettings {
            fn read() -> Self {
                Self { $( $name: settings!(@read $kind; gucs::$name), )+ }
            }

            /// The values PostgreSQL starts from.
            #[cfg_attr(not(test), allow(dead_code))]
            pub fn defaults() -> Self {
                Self { $( $name: settings!(@default $kind; $($argument)*), )+ }
            }

            /// Each setting on its own, in the table's order: bounds, then conversion.
            fn convert(self) -> $crate::error::SyncResult<Settings> {
                Ok(Settings {
                    $( $name: {
                        settings!(@bounds $kind; $($argument)*; $name, self.$name)?;
                        ($convert)(self.$name)?
                    }, )+
                })
            }
        }

        #[derive(Debug, Clone)]
        pub struct Settings {
            $( #[doc = $short] pub $name: $field, )+
        }
    };
}

pub(crate) use settings;

/// A setting's text as the code sees it: trimmed, and empty when unset.
pub fn text_value(value: Option<&CStr>) -> String {
    value
        .map(|value| value.to_string_lossy().trim().to_string())
        .unwrap_or_default()
}

/// A description or a name, as PostgreSQL takes it; evaluated at compile time.
pub const fn c_text(text: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(text.as_bytes()) {
        Ok(text) => text,
        Err(_) => panic!("a setting's name or description holds a NUL"),
    }
}

/// PostgreSQL enforces an integer setting's bounds; values built any other way (tests) are
/// held to the same ones.
pub fn within_bounds(name: &str, value: i32, min: i32, max: i32) -> crate::error::SyncResult<()> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(crate::error::SyncError::config(
        format!("{name} = {value} is outside its range {min} .. {max}"),
        "Set it within its range (SHOW it, or see pg_settings' min_val and max_val).",
    ))
}
