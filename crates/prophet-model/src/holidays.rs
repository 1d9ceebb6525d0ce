//! Country holiday calendars for [`crate::ProphetConfig::country_holidays`], the dates Python Prophet's
//! `add_country_holidays` takes from the `holidays` package.
//!
//! Built in: `US`, the federal holidays of `holidays` 0.109 (what `pip install prophet` brings):
//! New Year's Day, Martin Luther King Jr. Day (from 1986), Washington's Birthday, Memorial Day, Juneteenth
//! National Independence Day (from 2021), Independence Day, Labor Day, Columbus Day, Veterans Day,
//! Thanksgiving Day, Christmas Day, and for the fixed-date ones an "(observed)" holiday on the Friday before
//! a Saturday or the Monday after a Sunday (New Year's Day observed on 31 December of the year before). The
//! rules are those in force since 1971; earlier years are not modelled.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use crate::{HolidaySpec, ProphetError};

/// Years after the last training year for which a fit lists each country holiday's dates, so a saved model
/// forecasts them without the calendar.
pub const YEARS_AHEAD: i32 = 10;

/// Countries with a built-in calendar.
pub const COUNTRIES: [&str; 1] = ["US"];

/// Fails unless `country` has a built-in calendar.
pub(crate) fn check_country(country: &str) -> Result<(), ProphetError> {
    if COUNTRIES.contains(&country) {
        Ok(())
    } else {
        Err(ProphetError::InvalidConfig(format!(
            "country_holidays: no calendar for {country:?} (built in: {})",
            COUNTRIES.join(", ")
        )))
    }
}

/// The holidays of `country` whose name occurs in `fit_years` (Python's rule: one column per name seen in
/// training), each with its dates over `fit_years` and [`YEARS_AHEAD`] more years.
pub(crate) fn country_holidays(
    country: &str,
    fit_years: RangeInclusive<i32>,
) -> Result<Vec<HolidaySpec>, ProphetError> {
    check_country(country)?;
    let in_fit: Vec<String> = us_holidays(fit_years.clone()).into_iter().map(|(_, name)| name).collect();
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (date, name) in us_holidays(*fit_years.start()..=*fit_years.end() + YEARS_AHEAD) {
        if in_fit.contains(&name) {
            by_name.entry(name).or_default().push(date.format("%Y-%m-%d").to_string());
        }
    }
    Ok(by_name.into_iter().map(|(name, dates)| HolidaySpec { name, dates }).collect())
}

/// US federal holidays in `years`, sorted by date.
pub(crate) fn us_holidays(years: RangeInclusive<i32>) -> Vec<(NaiveDate, String)> {
    let mut out = Vec::new();
    for year in years {
        let fixed = |month, day, name: &str, out: &mut Vec<(NaiveDate, String)>| {
            let Some(date) = NaiveDate::from_ymd_opt(year, month, day) else { return };
            out.push((date, name.to_string()));
            let observed = match date.weekday() {
                Weekday::Sat => date - Duration::days(1),
                Weekday::Sun => date + Duration::days(1),
                _ => return,
            };
            // New Year's Day on a Saturday is observed in the year before; `holidays` lists it there.
            if observed.year() == year {
                out.push((observed, format!("{name} (observed)")));
            }
        };
        fixed(1, 1, "New Year's Day", &mut out);
        if NaiveDate::from_ymd_opt(year + 1, 1, 1).is_some_and(|d| d.weekday() == Weekday::Sat) {
            out.extend(NaiveDate::from_ymd_opt(year, 12, 31).map(|d| (d, "New Year's Day (observed)".to_string())));
        }
        let mut nth = |month, weekday, n, name: &str| {
            out.extend(NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).map(|d| (d, name.to_string())));
        };
        if year >= 1986 {
            nth(1, Weekday::Mon, 3, "Martin Luther King Jr. Day");
        }
        nth(2, Weekday::Mon, 3, "Washington's Birthday");
        nth(9, Weekday::Mon, 1, "Labor Day");
        nth(10, Weekday::Mon, 2, "Columbus Day");
        nth(11, Weekday::Thu, 4, "Thanksgiving Day");
        // Memorial Day: the last Monday of May.
        if let Some(may_31) = NaiveDate::from_ymd_opt(year, 5, 31) {
            let back = may_31.weekday().num_days_from_monday();
            out.push((may_31 - Duration::days(i64::from(back)), "Memorial Day".to_string()));
        }
        if year >= 2021 {
            fixed(6, 19, "Juneteenth National Independence Day", &mut out);
        }
        fixed(7, 4, "Independence Day", &mut out);
        fixed(11, 11, "Veterans Day", &mut out);
        fixed(12, 25, "Christmas Day", &mut out);
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(years: RangeInclusive<i32>) -> Vec<String> {
        us_holidays(years).into_iter().map(|(d, n)| format!("{d} {n}")).collect()
    }

    #[test]
    fn us_2018_and_2021_are_those_of_pythons_holidays_package() {
        // `prophet.make_holidays.make_holidays_df(year_list=[2018], country="US")` with holidays 0.109.
        assert_eq!(
            listed(2018..=2018),
            [
                "2018-01-01 New Year's Day",
                "2018-01-15 Martin Luther King Jr. Day",
                "2018-02-19 Washington's Birthday",
                "2018-05-28 Memorial Day",
                "2018-07-04 Independence Day",
                "2018-09-03 Labor Day",
                "2018-10-08 Columbus Day",
                "2018-11-11 Veterans Day",
                "2018-11-12 Veterans Day (observed)",
                "2018-11-22 Thanksgiving Day",
                "2018-12-25 Christmas Day",
            ]
        );
        let y2021 = listed(2021..=2021);
        for expected in [
            "2021-06-18 Juneteenth National Independence Day (observed)",
            "2021-06-19 Juneteenth National Independence Day",
            "2021-07-05 Independence Day (observed)",
            "2021-12-24 Christmas Day (observed)",
            "2021-12-31 New Year's Day (observed)",
        ] {
            assert!(y2021.iter().any(|h| h == expected), "{expected} missing from {y2021:?}");
        }
        assert_eq!(y2021.len(), 15, "{y2021:?}");
    }

    #[test]
    fn country_holidays_keep_the_names_seen_in_training_with_future_dates() {
        let specs = country_holidays("US", 2018..=2018).expect("US is built in");
        let names: Vec<&str> = specs.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names.len(), 11, "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("Juneteenth")), "not a holiday in 2018: {names:?}");
        let christmas = specs.iter().find(|h| h.name == "Christmas Day").expect("Christmas");
        assert_eq!(christmas.dates.len(), 1 + YEARS_AHEAD as usize);
        assert_eq!(christmas.dates.last().map(String::as_str), Some("2028-12-25"));
        let err = country_holidays("FR", 2018..=2018).expect_err("no French calendar").to_string();
        assert!(err.contains("\"FR\"") && err.contains("US"), "{err}");
    }
}
