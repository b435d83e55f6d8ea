# page build: filled in by the app
