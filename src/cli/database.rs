//! The database the operator commands work on, and the clock they stamp with.

use crate::config::Config;
use crate::storage::Db;

/// Opens (and migrates) the configured database, saying on stderr which one it is: a command
/// run from another directory than `serve` would otherwise work on another SQLite file
/// unnoticed.
pub(crate) async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let url = config.database.url.expose();
    let new_file = crate::storage::is_new_sqlite_file(url);
    let db = Db::connect(&config.database).await?;
    db.migrate().await?;
    // What the command writes is stamped on the database's clock, as `serve` stamps it: a
    // grant made on a machine whose clock is off is not dated in another day or month.
    db.align_clock().await?;
    // Described now that a new file exists, so that its path is absolute.
    let location = crate::storage::describe_url(url);
    if new_file {
        eprintln!(
            "warning: created a new, empty database ({location}); if `serve` runs elsewhere, \
             run this command from its directory or give the same database.url"
        );
    } else {
        eprintln!("database: {location}");
    }
    Ok(db)
}
