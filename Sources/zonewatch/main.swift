print("zonewatch")
