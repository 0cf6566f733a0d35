"""TikTok Ads Manager: the typed client (`client`), OAuth and credential checks (`oauth`), and the TikTok side of
audience and offline-event runs. See docs/architecture.md."""
