"""Operations: metrics, rolling statistics, consumer status reports, structured logs."""
