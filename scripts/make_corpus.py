#!/usr/bin/env python3
"""Generate the sample annotated corpus (topic + NER) for this project.

Deterministic: the same --seed always gives a byte-identical file. Stdlib only.

Each sentence comes from a hand-written frame (a news/blog/review-style sentence with
slots such as {PER} or {CITY}) filled from pools of entity names. The sentence is built
by concatenating literal pieces and entity strings, and every span's start/end is the
length of the text built so far, so offsets are computed, never typed by hand.

Output: one JSON object per line,
    {"id": "corpus-0001", "sentence": ..., "task_A": topic, "task_B": [{"text", "type", "start", "end"}, ...]}
with Python code-point offsets, end exclusive. A self-check at the end asserts the
corpus invariants and prints counts.

    python scripts/make_corpus.py --output data/raw/corpus.jsonl
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

TOPICS = ["travel", "technology", "politics", "other"]
ENTITY_TYPES = ["PERSON", "LOC", "ORG", "DATE"]

# --------------------------------------------------------------------------------------
# Entity pools
# --------------------------------------------------------------------------------------

PERSONS = [
    # English-speaking
    "Emily Carter", "James O'Connor", "Sarah Mitchell", "Michael Thompson", "Olivia Bennett",
    "Daniel Hughes", "Hannah Brooks", "David Reynolds", "Jessica Palmer", "Thomas Whitaker",
    "Laura Simmons", "Kevin Walsh", "Megan Foster", "Brian Kelly", "Amanda Price",
    "Christopher Lane", "Natalie Porter", "Ryan Gallagher", "Grace Holloway", "Robert J. Ellison",
    "Mary-Kate O'Neill", "Aiden McAllister", "Chloe Whitfield", "Marcus Bell", "Tanya Robinson",
    # Spanish / Latin American
    "José Martínez", "María Fernández", "Alejandro Gómez", "Lucía Herrera", "Javier Ortega",
    "Camila Rodríguez", "Mateo Sánchez", "Valentina Ruiz", "Diego Castillo", "Sofía Morales",
    "Andrés Villalobos", "Ximena Navarro", "Rosa Quispe", "Mariana Villanueva", "Iñigo Etxeberria",
    # Portuguese / Brazilian
    "João Silva", "Ana Beatriz Costa", "Luís Gonçalves", "Fernanda Araújo", "Thiago Pereira",
    "Gabriela Rocha",
    # French
    "Zoë Lefèvre", "Étienne Dubois", "Amélie Laurent", "François Moreau", "Céline Girard",
    "Hélène Rousseau", "Benoît Lambert",
    # German / Dutch
    "Jürgen Schmidt", "Anna Müller", "Lukas Becker", "Greta Schröder", "Matthias Weiß",
    "Katrin Hoffmann", "Pieter van der Berg", "Femke de Vries", "Joost Bakker",
    # Polish / Czech / Balkan / East Slavic
    "Łukasz Nowak", "Agnieszka Wiśniewska", "Krzysztof Zieliński", "Małgorzata Kowalczyk",
    "Tomáš Dvořák", "Petra Novotná", "Dragan Petrović", "Milica Jovanović", "Olena Kovalenko",
    "Dmitri Volkov", "Anastasia Ivanova", "Yulia Sokolova",
    # Nordic
    "Søren Nielsen", "Ingrid Johansson", "Björn Lindqvist", "Astrid Halvorsen", "Mikko Virtanen",
    "Sigríður Jónsdóttir", "Freja Andersen", "Åsa Berglund",
    # Italian / Greek / Turkish
    "Giulia Rossi", "Marco Bianchi", "Francesca Romano", "Lorenzo Esposito", "Chiara Ricci",
    "Nikos Papadopoulos", "Eleni Georgiou", "Ayşe Yılmaz", "Mehmet Öztürk", "Elif Şahin",
    # Arabic / Persian / Hebrew
    "Ahmed Hassan", "Fatima Al-Zahra", "Omar Khalil", "Layla Haddad", "Youssef Benali",
    "Rania Mansour", "Karim Abdullah", "Dariush Rahimi", "Shirin Tehrani", "Noa Levi",
    "Yosef Cohen",
    # African
    "Chidi Okonkwo", "Ngozi Adeyemi", "Kwame Mensah", "Amara Diallo", "Thabo Nkosi",
    "Wanjiru Kamau", "Abebe Bekele", "Fatou Ndiaye", "Tendai Moyo", "Oluwaseun Balogun",
    "Nomvula Dlamini", "Kofi Asante",
    # South Asian
    "Priya Sharma", "Arjun Patel", "Ananya Iyer", "Rahul Mehta", "Vikram Reddy", "Deepika Nair",
    "Imran Qureshi", "Ayesha Siddiqui", "Nimal Perera", "Sunita Thapa", "Farhan Chowdhury",
    "Harpreet Kaur",
    # East / Southeast Asian (romanised and native script)
    "Nguyễn Văn An", "Trần Thị Mai", "Lê Minh Khoa", "Phạm Quốc Bảo", "王伟", "张丽华", "陈志明",
    "刘洋", "田中美咲", "山本健太", "佐藤花子", "김민준", "이서연", "박지훈", "Wei Zhang",
    "Mei Lin Chen", "Hiroshi Tanaka", "Yuki Nakamura", "Kenji Watanabe", "Min-jun Kim",
    "Ji-woo Park", "Seo-yeon Lee", "Siti Rahmawati", "Budi Santoso", "Maria Santos",
    "Juan dela Cruz", "Somchai Wongsakul", "Aung Kyaw Min", "Lin Yu-ting",
    # Pacific / Indigenous / other
    "Aroha Ngata", "Tama Whaanga", "Leilani Kahale", "Malia Tuilagi",
]

# (city, country-or-state): used alone, and as adjacent "City, Country" pairs (two LOC spans).
CITIES = [
    ("Paris", "France"), ("Lyon", "France"), ("Berlin", "Germany"), ("Munich", "Germany"),
    ("Madrid", "Spain"), ("Barcelona", "Spain"), ("Seville", "Spain"), ("Lisbon", "Portugal"),
    ("Porto", "Portugal"), ("Rome", "Italy"), ("Milan", "Italy"), ("Florence", "Italy"),
    ("Naples", "Italy"), ("Amsterdam", "Netherlands"), ("Vienna", "Austria"),
    ("Prague", "Czech Republic"), ("Kraków", "Poland"), ("Warsaw", "Poland"),
    ("Budapest", "Hungary"), ("Copenhagen", "Denmark"), ("Stockholm", "Sweden"),
    ("Oslo", "Norway"), ("Helsinki", "Finland"), ("Reykjavík", "Iceland"), ("Dublin", "Ireland"),
    ("Edinburgh", "Scotland"), ("London", "England"), ("Athens", "Greece"),
    ("Istanbul", "Turkey"), ("Cairo", "Egypt"), ("Marrakesh", "Morocco"), ("Nairobi", "Kenya"),
    ("Lagos", "Nigeria"), ("Accra", "Ghana"), ("Cape Town", "South Africa"),
    ("Addis Ababa", "Ethiopia"), ("Dubai", "United Arab Emirates"), ("Tel Aviv", "Israel"),
    ("Mumbai", "India"), ("New Delhi", "India"), ("Bengaluru", "India"),
    ("Kathmandu", "Nepal"), ("Colombo", "Sri Lanka"), ("Bangkok", "Thailand"),
    ("Chiang Mai", "Thailand"), ("Hanoi", "Vietnam"), ("Ho Chi Minh City", "Vietnam"),
    ("Kuala Lumpur", "Malaysia"), ("Jakarta", "Indonesia"), ("Tokyo", "Japan"),
    ("Kyoto", "Japan"), ("Osaka", "Japan"), ("Seoul", "South Korea"), ("Busan", "South Korea"),
    ("Beijing", "China"), ("Shanghai", "China"), ("Sydney", "Australia"),
    ("Melbourne", "Australia"), ("Auckland", "New Zealand"), ("Toronto", "Canada"),
    ("Vancouver", "Canada"), ("Montréal", "Canada"), ("Mexico City", "Mexico"),
    ("Oaxaca", "Mexico"), ("São Paulo", "Brazil"), ("Rio de Janeiro", "Brazil"),
    ("Buenos Aires", "Argentina"), ("Lima", "Peru"), ("Bogotá", "Colombia"),
    ("Medellín", "Colombia"), ("Santiago", "Chile"), ("Havana", "Cuba"),
    ("New York City", "New York"), ("San Francisco", "California"),
    ("Los Angeles", "California"), ("Chicago", "Illinois"), ("Seattle", "Washington"),
    ("Austin", "Texas"), ("Boston", "Massachusetts"), ("New Orleans", "Louisiana"),
    ("Miami", "Florida"), ("Denver", "Colorado"), ("Cupertino", "California"),
]
CITY_NAMES = [c for c, _ in CITIES]

COUNTRIES = [
    "France", "Germany", "Spain", "Portugal", "Italy", "Netherlands", "Austria",
    "Czech Republic", "Poland", "Hungary", "Denmark", "Sweden", "Norway", "Finland", "Iceland",
    "Ireland", "Greece", "Turkey", "Egypt", "Morocco", "Kenya", "Nigeria", "Ghana",
    "South Africa", "Ethiopia", "Senegal", "Israel", "Jordan", "India", "Nepal", "Sri Lanka",
    "Bangladesh", "Thailand", "Vietnam", "Malaysia", "Indonesia", "Japan", "South Korea",
    "China", "Mongolia", "Australia", "New Zealand", "Canada", "Mexico", "Brazil", "Argentina",
    "Peru", "Colombia", "Chile", "Cuba", "America", "United States", "United Kingdom",
    "Ukraine", "Georgia", "Kazakhstan", "Uruguay", "Costa Rica", "Tanzania", "Rwanda",
    "Côte d'Ivoire",
]

REGIONS = [  # sub-national regions and states
    "Texas", "California", "Bavaria", "Catalonia", "Tuscany", "Kerala", "Ontario", "Quebec",
    "Queensland", "Andalusia", "Provence", "Hokkaido", "Bali", "Sicily", "Crete", "Patagonia",
    "Yucatán", "Rajasthan", "Lombardy", "Brittany", "Alaska", "Galicia", "Sardinia",
    "Western Cape", "Nova Scotia", "Jeju Island",
]

AREAS = [  # larger multi-country regions
    "Southeast Asia", "Latin America", "Scandinavia", "East Africa", "Central Asia",
    "Western Europe", "North Africa", "South America", "Central America", "Eastern Europe",
    "West Africa", "Oceania",
]

PARKS = [  # parks, landmarks, natural sites (read naturally without an article)
    "Yellowstone National Park", "Yosemite National Park", "Grand Canyon National Park",
    "Banff National Park", "Serengeti National Park", "Kruger National Park",
    "Zion National Park", "Plitvice Lakes National Park", "Torres del Paine", "Machu Picchu",
    "Mount Fuji", "Mount Kilimanjaro", "Lake Como", "Lake Tahoe", "Lake Bled", "Ha Long Bay",
    "Angkor Wat", "Iguazu Falls", "Niagara Falls", "Cinque Terre", "Table Mountain",
    "Milford Sound", "Uluru", "Petra", "Cappadocia",
]

ORG_TECH = [
    "Fetch Rewards", "Google", "Microsoft", "Apple", "Amazon Web Services", "Nvidia",
    "Samsung Electronics", "Spotify", "Shopify", "Stripe", "OpenAI", "Mistral AI", "DeepMind",
    "Baidu", "Tencent", "Alibaba", "Infosys", "Tata Consultancy Services", "SAP", "Siemens",
    "Ericsson", "Nokia", "Huawei", "Intel", "AMD", "Arm Holdings", "TSMC", "Mozilla Foundation",
    "GitHub", "Zalando", "Rakuten", "Grab", "Flutterwave", "Nubank", "Mercado Libre", "Canva",
    "Atlassian", "Klarna", "Revolut", "Duolingo", "Hugging Face", "Databricks",
    "Brightlane Labs", "Nimbus Analytics", "Quantix Systems", "Kobalt Robotics",
]
ORG_CHIPS = ["Nvidia", "Intel", "AMD", "Arm Holdings", "TSMC", "Samsung Electronics", "Huawei",
             "Quantix Systems"]
ORG_TRAVEL = [
    "Lufthansa", "Air France", "KLM", "Emirates", "Qatar Airways", "Singapore Airlines",
    "Ryanair", "easyJet", "Delta Air Lines", "United Airlines", "LATAM Airlines",
    "Turkish Airlines", "Cathay Pacific", "Japan Airlines", "Icelandair", "Marriott International",
    "Hilton", "Airbnb", "Booking.com", "Expedia", "Eurostar", "Deutsche Bahn", "Amtrak",
    "Lonely Planet", "Accor", "Four Seasons", "Aeroméxico",
]
ORG_MEDIA = [
    "Reuters", "Al Jazeera", "Le Monde", "Der Spiegel", "Bloomberg", "Agence France-Presse",
    "NHK", "Deutsche Welle", "El País", "Folha de S.Paulo", "CNN", "Politico", "Nikkei Asia",
    "TechCrunch", "Axios", "Euronews", "Kyodo News", "Xinhua",
]
ORG_INST = [  # universities, hospitals, NGOs
    "Harvard University", "Stanford University", "MIT", "ETH Zurich", "Tsinghua University",
    "Sorbonne University", "Mayo Clinic", "Karolinska Institute", "Médecins Sans Frontières",
    "Oxfam", "Greenpeace", "Amnesty International", "UNICEF", "Imperial College London",
    "McGill University", "Seoul National University", "Peking University", "Makerere University",
    "Johns Hopkins University", "Charité",
]
ORG_SPORT = [
    "Real Madrid", "FC Barcelona", "Manchester United", "Bayern Munich", "Juventus",
    "Boca Juniors", "Ajax", "Galatasaray", "Kaizer Chiefs", "Flamengo", "Celtic",
    "Paris Saint-Germain", "Borussia Dortmund", "Kashima Antlers", "River Plate", "Al Ahly",
]
ORG_RETAIL = [  # consumer brands with shops
    "Starbucks", "IKEA", "Zara", "Uniqlo", "Adidas", "Nike", "McDonald's", "Carrefour", "Lego",
    "Decathlon", "H&M",
]
ORG_FOOD = [  # food and drink companies
    "Nestlé", "Unilever", "Danone", "Ferrero", "Lindt", "Ben & Jerry's", "Heineken", "Kraft Heinz",
    "Mondelez",
]
# Bodies that read with "the" in front ("the European Parliament"); the article is literal
# text, never part of the span.
ORG_GOV_INTL = [
    "European Commission", "European Parliament", "United Nations", "African Union",
    "World Bank", "International Monetary Fund", "World Trade Organization",
    "World Health Organization", "Organization of American States", "Council of Europe",
]
ORG_GOV_NAT = [
    "Bundestag", "Supreme Court", "Senate", "House of Commons", "Election Commission of India",
    "Constitutional Court", "National Assembly", "Federal Election Commission", "Knesset",
    "Riksdag", "Lok Sabha", "Diet",
]
ORG_BANKS = [
    "European Central Bank", "Federal Reserve", "Bank of England", "Bank of Japan",
    "Reserve Bank of India", "Swiss National Bank", "People's Bank of China", "Bank of Canada",
]
ORG_PARTIES = [
    "Labour Party", "Conservative Party", "Green Party", "Social Democratic Party",
    "Democratic Party", "Republican Party", "Liberal Democrats", "Christian Democratic Union",
    "Indian National Congress", "African National Congress", "Partido Popular",
    "Workers' Party", "Liberal Party", "Pirate Party",
]
ORG_ALLIANCES = ["NATO", "ASEAN", "G7", "G20", "Mercosur", "ECOWAS", "OSCE", "APEC"]

# --------------------------------------------------------------------------------------
# Date pools (some generated from the RNG, so they vary but stay deterministic)
# --------------------------------------------------------------------------------------

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
MONTH_ABBR = ["Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.",
              "Oct.", "Nov.", "Dec."]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

WHEN_PAST = [  # relative past dates, used without a preposition
    "yesterday", "last week", "last month", "last year", "earlier this month",
    "earlier this year", "two days ago", "three weeks ago", "a few days ago", "last spring",
    "last summer", "last autumn", "last winter", "the day before yesterday", "this week",
    "last weekend", "two years ago", "earlier this week",
] + [f"last {d}" for d in WEEKDAYS]
WHEN_NEXT = [  # relative future dates
    "tomorrow", "next week", "next month", "next year", "later this year", "this weekend",
    "next spring", "next summer", "next autumn", "the day after tomorrow", "later this month",
] + [f"next {d}" for d in WEEKDAYS]


def date_on(rng: random.Random) -> str:
    """A specific day, used after 'on'."""
    style = rng.random()
    if style < 0.12:
        return rng.choice(WEEKDAYS)
    y, m = rng.randint(1995, 2025), rng.randint(1, 12)
    d = rng.randint(1, DAYS_IN_MONTH[m - 1])
    if style < 0.40:
        return f"{MONTHS[m - 1]} {d}, {y}"
    if style < 0.62:
        return f"{d} {MONTHS[m - 1]} {y}"
    if style < 0.78:
        return f"{y:04d}-{m:02d}-{d:02d}"
    if style < 0.88:
        return f"{MONTH_ABBR[m - 1]} {d}, {y}"
    if style < 0.94:
        return f"{d} {MONTHS[m - 1]}"
    return f"{MONTHS[m - 1]} {d}"


def date_in(rng: random.Random) -> str:
    """A past period, used after 'in'."""
    style = rng.random()
    y = rng.randint(1975, 2024)
    if style < 0.25:
        return str(y)
    if style < 0.45:
        return f"{rng.choice(MONTHS)} {y}"
    if style < 0.57:
        return f"the {rng.choice(['1960', '1970', '1980', '1990', '2000', '2010'])}s"
    if style < 0.67:
        return f"Q{rng.randint(1, 4)} {rng.randint(2015, 2024)}"
    if style < 0.82:
        return f"{rng.choice(['early', 'late'])} {y}"
    return f"the {rng.choice(['spring', 'summer', 'autumn', 'winter'])} of {y}"


def date_future(rng: random.Random) -> str:
    """A future period, used after 'in' or 'by'."""
    style = rng.random()
    y = rng.randint(2026, 2032)
    if style < 0.3:
        return str(y)
    if style < 0.5:
        return f"{rng.choice(['early', 'late'])} {y}"
    if style < 0.7:
        return f"Q{rng.randint(1, 4)} {y}"
    if style < 0.85:
        return f"{rng.choice(MONTHS)} {y}"
    return f"the {rng.choice(['first', 'second'])} half of {y}"


def date_month(rng: random.Random) -> str:
    style = rng.random()
    if style < 0.7:
        return rng.choice(MONTHS)
    return rng.choice(["early ", "late ", "mid-"]) + rng.choice(MONTHS)


def date_year(rng: random.Random) -> str:
    return str(rng.randint(1978, 2024))


# --------------------------------------------------------------------------------------
# Non-entity word pools (lowercase slots); never annotated
# --------------------------------------------------------------------------------------

WORDS = {
    "num_word": ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"],
    "num_small": ["3", "4", "6", "7", "9", "11", "12", "15", "18", "23"],
    "num": ["120", "250", "300", "450", "600", "800", "1,200", "2,000", "3,500", "5,000"],
    "pct": ["2", "3.5", "4", "7", "8.2", "11", "12.5", "15", "18", "23"],
    "money": ["$40 million", "€12 million", "£3.5 million", "$1.2 billion", "$250 million",
              "€90 million", "$7 million", "¥4 billion", "$18 million", "€2.4 billion"],
    "price": ["$95", "€120", "£80", "$210", "€65", "$150", "£140", "€300"],
    "small_price": ["€2", "€3.50", "$5", "£1.50", "€4", "$3"],
    "bignum": ["four million", "two million", "600,000", "1.5 million", "three million",
               "800,000", "250,000"],
    "score": ["2-1", "3-0", "1-0", "4-2", "3-2", "2-0", "5-1"],
    "temp": ["41", "38", "44", "-18", "-25", "35", "47"],
    "vote_a": ["312", "287", "56", "401", "214", "63", "330"],
    "vote_b": ["201", "190", "41", "157", "198", "37", "250"],
    "adj_good": ["excellent", "fantastic", "surprisingly good", "generous", "lovely", "superb",
                 "decent", "amazing"],
    "adj_bad": ["tiny", "noisy", "a bit dated", "freezing", "cramped", "overpriced", "dusty"],
    "adj_room": ["spacious", "quiet", "tiny", "cosy", "bright", "modern", "rustic"],
    "adj_food": ["hearty", "delicious", "bland", "spicy", "comforting", "easy", "vegan",
                 "ridiculously good"],
    "adj_tech": ["faster", "cheaper", "more efficient", "newer", "dedicated AI", "custom"],
    "trip_kind": ["hike", "city tour", "boat trip", "food tour", "museum visit", "safari",
                  "bike ride"],
    "tech_product": ["invoicing software", "a scheduling app", "AI chatbots", "payroll tools",
                     "an inventory tracker", "fraud detection models"],
    "os_thing": ["system", "firmware", "operating system", "browser", "driver"],
    "policy": ["pension", "tax", "housing", "healthcare", "education", "immigration",
               "energy", "labour"],
    "sport_kind": ["striker", "goalkeeper", "captain", "winger", "defender"],
    "dish": ["risotto", "curry", "stew", "lasagne", "dumplings", "paella", "tagine", "ramen"],
    "weather": ["rain", "snow", "wind", "fog", "hail", "sleet"],
}

# --------------------------------------------------------------------------------------
# Frames. Uppercase slots are entities (type + pool below), lowercase slots are WORDS.
# Literal text in a frame must not contain named entities or date expressions.
# --------------------------------------------------------------------------------------

FRAMES = {
    "travel": [
        "We spent {num_word} days hiking in {PARK} and the views were unreal.",
        "{PARK} sees over {bignum} visitors a year.",
        "Our flight from {CITY} to {CITY} on {TRAVEL} was delayed by three hours.",
        "Just landed in {CC} ✈️",
        "{TRAVEL} will add a daily nonstop route between {CITY} and {CITY} starting {NEXT}.",
        "The hotel near {PARK} was fully booked, so we stayed in a small guesthouse instead.",
        "If you only have a couple of days in {CITY}, skip the tourist traps and head straight for the old town.",
        "{PER} has visited {num_small} countries and still says {COUNTRY} is the favourite.",
        "Travel blogger {PER} recommends booking train tickets in {COUNTRY} well in advance.",
        "{CITY}'s new airport terminal opened to passengers {WHEN}.",
        "Tourism in {REGION} grew by {pct} percent in {IN}, according to {MEDIA}.",
        "We booked a cabin on {ON} and drove up to {PARK} at dawn.",
        "The cheapest time to fly to {COUNTRY} is usually {MONTH}.",
        "{PER} and {PER} backpacked across {AREA} in {IN}.",
        "Is {CITY} worth visiting in {MONTH}, or is it too crowded?",
        "Hotel prices in {CITY} doubled during the festival, travellers told {MEDIA}.",
        "{TRAVEL} passengers stranded in {CITY} were offered vouchers and a free night at an airport hotel.",
        "The ferry from {CITY} to the islands takes about {num_word} hours, and tickets sell out fast in {MONTH}.",
        "Cruise ships will be banned from the historic centre of {CITY} from {ON}.",
        "“Nothing prepares you for the sunrise over {PARK},” said tour guide {PER}.",
        "Our rental in {CITY}, hosted by {PER}, had a rooftop terrace with a view of the whole bay.",
        "{COUNTRY} will require visitors to apply for an electronic travel permit starting {NEXT}.",
        "I took the night train from {CITY} to {CITY} and slept better than on any flight.",
        "{PER}, who runs a hostel in {CC}, says bookings are finally back to normal.",
        "Top five hidden beaches in {REGION} that the guidebooks don't mention",
        "{TRAVEL} and {TRAVEL} announced a codeshare agreement covering flights to {AREA}.",
        "Visitors to {PARK} must now reserve a timed entry slot online.",
        "The queue at passport control in {CITY} took almost two hours {WHEN}.",
        "{WHENC}, a storm forced {TRAVEL} to cancel dozens of flights out of {CITY}.",
        "We rented a campervan in {CITY} and spent {num_word} weeks driving around {COUNTRY}.",
        "{MEDIA} ranked {CITY} the most walkable city for tourists in {YEAR}.",
        "Our guide {PER} grew up near {PARK} and knew every trail by heart.",
        "Backpacking {AREA} on a budget: hostels, buses and street food",
        "Room rates at {TRAVEL} properties in {CITY} start at around {price} a night.",
        "My parents flew to {COUNTRY} for their anniversary on {ON} and loved every minute of it.",
        "{CITY} is introducing a tourist tax of {small_price} per night for hotel guests.",
        "After {num_word} days in {CITY}, we caught an overnight bus to {CITY}.",
        "Lost luggage complaints against {TRAVEL} rose sharply, according to consumer advocate {PER}.",
        "The best view of {PARK} is from the lookout point just before sunset 🌅",
        "{PER} wrote a guidebook about slow travel in {COUNTRY} after living there since {YEAR}.",
        "Can anyone recommend a quiet hotel in {CITY} that's close to the train station?",
        "Flights to {CC} are cheapest if you book about six weeks ahead.",
        "Day trip idea: take the early train from {CITY} and be at {PARK} by lunchtime.",
        "Travellers heading to {COUNTRY} {NEXT} should check the new visa rules first.",
        "The old town of {CITY} was packed with tour groups when we visited in {MONTH}.",
        "{TRAVEL} is opening a new lounge at its {CITY} hub for business class passengers.",
        "My favourite hostel in {CITY} closed {WHEN}, sadly.",
        "Trip report: {num_word} nights in {CITY}, {num_word} in {CITY} and a week on the coast of {REGION}",
        "📍 {CC} — day {num_small} of the trip",
        "On {ON}, we finally made it to the summit of {PARK}.",
        "I booked the hotel through {TRAVEL} and the room was nothing like the photos.",
        "{PER}'s photos of {PARK} convinced half our group to book the trip.",
        "The sign at the trailhead said \"Bears active in this area\" and we turned back.",
        "Direct flights between {COUNTRY} and {COUNTRY} resume on {ON} after a long pause.",
        "Honestly the best part of our trip to {REGION} was the food",
        "A travel advisory for parts of {COUNTRY} was lifted {WHEN}, and tour operators are already taking bookings.",
        "Sunset from the rooftop bar in {CITY}",
        "{PER} just got back from {num_word} weeks in {COUNTRY} and won't stop talking about the night markets.",
    ],
    "technology": [
        "{TECH} CEO {PER} unveiled the company's new AI assistant at a developer conference in {CITY}.",
        "{TECH} just became {COUNTRY}'s most downloaded finance app",
        "The startup, founded by {PER} and {PER} in {YEAR}, raised {money} in its latest funding round.",
        "{TECH} announced {WHEN} that it will open a new chip design centre in {CITY}.",
        "{TECH} released a security patch on {ON} after researchers found a flaw in its login system.",
        "Engineers at {TECH} led by {PER} say the new model runs twice as fast on the same hardware.",
        "{PER}, a software engineer in {CITY}, built the open-source tool over a single weekend.",
        "{TECH} acquired {TECH} for {money} in an all-stock deal.",
        "The latest update from {TECH} drains my phone battery in a few hours 😤",
        "{TECH}'s quarterly earnings beat expectations thanks to strong demand for data centre chips.",
        "{TECH} plans to ship its first quantum computing chip in {FUT}.",
        "Researchers at {INST} and {TECH} published a paper on energy-efficient language models.",
        "Developers in {COUNTRY} can now pay for cloud services in local currency, {TECH} said.",
        "{PER} left {TECH} in {IN} to start a robotics company in {CITY}.",
        "The {TECH} outage {WHEN} took down thousands of websites for nearly two hours.",
        "Is anyone else unable to log into {TECH} right now?",
        "{TECH} is hiring {num} machine learning engineers for its new office in {CC}.",
        "Chipmaker {CHIP} expects supply shortages to ease by {FUT}.",
        "{PER} demoed the app live on stage and it crashed twice, which the audience loved.",
        "According to {MEDIA}, {TECH} is testing a subscription tier without ads.",
        "The {CITY} startup scene has exploded since {YEAR}, with dozens of fintech companies launching.",
        "{TECH} open-sourced its speech recognition toolkit on {ON}.",
        "“We are betting the company on AI,” {PER} told investors at a shareholder meeting.",
        "The {GOVINTL} fined {TECH} {money} over its handling of user data.",
        "Review: the new laptop from {TECH} has a great screen but a disappointing keyboard",
        "{PER} joined {TECH} as chief technology officer {WHEN}.",
        "Our team migrated the whole backend from {TECH} to {TECH} in just {num_word} weeks.",
        "{TECH} and {INST} are building a supercomputer near {CITY} to train climate models.",
        "The smartwatch made by {TECH} can now detect irregular heartbeats, the company said {WHEN}.",
        "Hackers exploited a bug in the {TECH} payment API starting on {ON}.",
        "{TECH} will stop supporting its older phones from {FUT}.",
        "{PER} says the secret to scaling a software startup in {COUNTRY} is hiring slowly.",
        "The app was downloaded {num} thousand times in its first week in {COUNTRY}.",
        "{TECH} shares fell {pct} percent after the product launch on {ON}.",
        "A coding bootcamp in {CITY} says most graduates now find jobs at companies like {TECH}.",
        "Downloads of the {TECH} app doubled in {COUNTRY} after the redesign",
        "{TECH} founder {PER} stepped down as chief executive on {ON}.",
        "The semiconductor plant that {CHIP} is building in {REGION} will employ around {num} people.",
        "{PER} from {INST} built a tiny neural network that runs on a ten-dollar microcontroller.",
        "In {YEAR}, {TECH} was a garage startup with three employees; now it runs data centres on four continents.",
        "Hot take: {TECH} makes the best developer tools on the market, full stop.",
        "{PER} and other beta testers in {CITY} reported that the navigation app froze when switching to offline mode.",
        "{CHIP}'s new chip is built on a three-nanometre process and ships {NEXT}.",
        "{MEDIA} reports that {TECH} is in talks to buy a self-driving car startup from {CITY}.",
        "Security firm {TECH} traced the ransomware attack to a botnet of hijacked routers in {COUNTRY}.",
        "{WHENC}, {TECH} rolled out end-to-end encryption for all group chats.",
        "The open-source database maintained by {PER} now powers apps at {TECH} and {TECH}.",
        "Why {TECH} moved its AI research lab from {CITY} to {CITY}",
        "Minimalist design aside, the new phone from {TECH} is a genuinely fast device.",
        "{PER} (@{handle}) posted a thread on how the team cut cloud costs by {pct} percent.",
        "The robotics lab at {INST} showed a warehouse robot that learns new tasks from a single demo.",
        "Our {CITY} office switched every laptop to an open-source operating system in {IN}.",
        "{TECH} says its translation model now supports {num_small} more languages, including several spoken in {AREA}.",
        "Startup founders in {CC} say access to GPUs is now harder to get than funding.",
        "Fetch the logs, restart the pods, then tell {PER} the deploy is done",
        "The data breach at {TECH} exposed the email addresses of users in {COUNTRY} and {COUNTRY}.",
        "Personal news: after {num_word} great years I am joining {TECH}",
        "{PER}, who leads the AI team at {TECH}, said the model was trained entirely on licensed data.",
    ],
    "politics": [
        "The {GOVNAT} voted {vote_a} to {vote_b} to approve the new climate law on {ON}.",
        "Prime Minister {PER} will meet {PER} in {CITY} {NEXT} to discuss trade and security.",
        "{PER} won the {YEAR} presidential election in {COUNTRY} with {pct} percent of the vote.",
        "The {PARTY} unveiled its manifesto {WHEN}, promising lower taxes and more housing.",
        "Opposition leader {PER} accused the government of hiding the true cost of the pension reform.",
        "Voters in {REGION} head to the polls on {ON} for a closely watched regional election.",
        "{COUNTRY} and {COUNTRY} signed a landmark border agreement in {CITY} on {ON}.",
        "Foreign minister {PER} arrived in {CC} for two days of talks on the ceasefire.",
        "The {BANK} held interest rates steady on {ON}, citing stubborn inflation.",
        "{COUNTRY}'s parliament passed a law {WHEN} requiring political parties to disclose all donations.",
        "The {PARTY} lost {num_small} seats in the {YEAR} general election.",
        "{PER}, a senior member of the {PARTY}, resigned {WHEN} amid a lobbying scandal.",
        "Protesters gathered outside the parliament building in {CITY} to demand early elections",
        "The {GOVINTL} called on both sides to respect the ceasefire agreed in {IN}.",
        "“This bill will protect millions of renters,” said {PER}, who drafted the legislation.",
        "{ALLIANCE} leaders will hold an emergency summit in {CITY} {NEXT}.",
        "{PER} was sworn in as {COUNTRY}'s youngest ever president on {ON}.",
        "The minister of finance, {PER}, presented the budget to parliament on {ON}.",
        "Polls suggest the {PARTY} could win a majority in {REGION} for the first time since {YEAR}.",
        "{COUNTRY} recalled its ambassador from {COUNTRY} after a diplomatic row over fishing rights.",
        "A court in {CITY} ruled {WHEN} that the election results must be recounted.",
        "Senator {PER} introduced a bill to cap prescription drug prices.",
        "The {GOVNAT} approved emergency funding for flood-hit areas of {REGION}.",
        "Turnout in the {YEAR} referendum in {COUNTRY} was the highest ever recorded.",
        "{PER} and {PER} clashed over immigration policy during a televised debate {WHEN}.",
        "The mayor of {CITY}, {PER}, is running for a third term.",
        "Diplomats from {COUNTRY}, {COUNTRY} and {COUNTRY} met behind closed doors in {CITY}.",
        "{MEDIA} reported that the coalition talks collapsed late on {ON}.",
        "The new sanctions against {COUNTRY} take effect {NEXT}, the {GOVINTL} said.",
        "Lawmakers in {COUNTRY} debated a proposal by {PER} to lower the voting age to sixteen.",
        "{PER} announced a bid for the {PARTY} leadership on {ON}.",
        "The ruling party in {COUNTRY} has been in power since {YEAR}.",
        "Thousands marched through {CITY} on {ON} to protest the new labour law.",
        "{ALLIANCE} foreign ministers agreed to expand sanctions at a meeting in {CITY}.",
        "The {GOVINTL} warned that the conflict could push millions into poverty by {FUT}.",
        "Election officials in {REGION} began counting postal votes {WHEN}.",
        "{PER}'s government survived a no-confidence vote by just {num_small} votes.",
        "The trade deal between {COUNTRY} and {ALLIANCE} still needs to be ratified by national parliaments.",
        "Breaking: {PER} resigns as prime minister of {COUNTRY}",
        "{COUNTRY}'s constitutional court struck down the controversial surveillance law in {IN}.",
        "Why the {YEAR} election in {COUNTRY} could reshape politics across {AREA}",
        "Ministers from {num_word} countries gathered in {CITY} {WHEN} for the climate summit.",
        "Campaign posters for {PER} lined every street in {CITY} ahead of the vote.",
        "{PER} told {MEDIA} that the party would not enter a coalition with the far right.",
        "President {PER} signed the infrastructure bill into law on {ON}.",
        "The {GOVINTL} sent election observers to {COUNTRY} for the vote on {ON}.",
        "{WHENC}, parliament in {COUNTRY} approved a new asylum law after a marathon debate.",
        "The {GOVNAT} will rule on whether the new tax is constitutional by {FUT}.",
        "{PER}, the {PARTY} candidate, conceded defeat shortly after midnight.",
        "Members of the {PARTY} in {REGION} voted to leave the governing coalition.",
        "Ambassador {PER} presented credentials to the president of {COUNTRY} on {ON}.",
        "\"We will not be intimidated,\" the opposition leader said outside the {GOVNAT}.",
        "{COUNTRY} will hold a snap election on {ON} after the coalition collapsed.",
        "The {GOVINTL} and {COUNTRY} reached a deal on debt relief {WHEN}.",
        "Is the {PARTY} really ready to govern {COUNTRY}?",
        "{CITY} city council voted to ban new fossil fuel boilers from {FUT}.",
        "Live updates: election night in {COUNTRY}",
        "Deputy prime minister {PER} met union leaders in {CITY} {WHEN} to end the strike.",
    ],
    "other": [
        "{SPORT} beat {SPORT} {score} on {ON} to reach the cup final.",
        "{PER} scored twice as {SPORT} came from behind to win {score}.",
        "Heavy snow is expected across {REGION} {NEXT}, forecasters warned.",
        "Temperatures in {CITY} hit a record {temp} degrees {WHEN}.",
        "The new ramen place near my office in {CITY} is honestly worth the hour-long queue.",
        "Chef {PER} opened a tiny bakery in {CITY} that sells out of croissants by ten.",
        "{PER}'s debut novel won the national book prize in {YEAR}.",
        "The {CITY} marathon on {ON} drew more than {num} runners.",
        "Doctors at {INST} say regular walking can cut the risk of heart disease significantly.",
        "{PER} will headline the music festival in {CITY} {NEXT}.",
        "I made {PER}'s lemon olive oil cake for a dinner party and everyone asked for the recipe 🍋",
        "A new exhibition of {PER}'s photographs opens at the city museum in {CITY} on {ON}.",
        "{SPORT} have signed the {sport_kind} {PER} on a four-year contract.",
        "Flooding closed several roads in {REGION} {WHEN}, and more rain is forecast.",
        "{PER} finished the race in {CITY} in under two hours, a personal best.",
        "The film, directed by {PER}, premiered at a festival in {CITY} in {IN}.",
        "{FOOD} is recalling a batch of chocolate bars sold in {COUNTRY} over allergy concerns.",
        "Street food in {CITY} is cheap, spicy and absolutely worth the queue.",
        "{WHENC}, {PER} became the youngest player ever to win the title.",
        "Coach {PER} says {SPORT} must defend better if they want to win the league.",
        "Health officials in {COUNTRY} are urging people over sixty to get a flu shot.",
        "{INST} researchers found that people who sleep less than six hours are more likely to catch colds.",
        "The orchestra from {CITY} will tour {AREA} in {FUT}.",
        "A heatwave has pushed temperatures above {temp} degrees in parts of {COUNTRY}.",
        "{PER} and {PER} share the lead after the third round of the golf tournament.",
        "This {adj_food} lentil soup recipe from {PER} takes only twenty minutes.",
        "The museum in {CITY} will return looted artefacts to {COUNTRY}, its director {PER} said.",
        "Fans of {SPORT} celebrated in the streets of {CITY} until sunrise",
        "{RETAIL} opened its first store in {CITY} on {ON}, and the line went around the block.",
        "I can't believe {SPORT} lost again 😭",
        "{PER} has been named head chef at a three-star restaurant in {CC}.",
        "According to {MEDIA}, the tournament final drew a record television audience in {COUNTRY}.",
        "The recipe calls for saffron from {REGION} and olive oil from {REGION}.",
        "{PER}, the former tennis champion, now runs a youth sports charity in {CITY}.",
        "Pollen levels in {CITY} are expected to peak in {MONTH}, allergist {PER} warned.",
        "Our book club picked {PER}'s memoir for {MONTH} and it sparked a heated discussion.",
        "{SPORT} fired their manager {WHEN} after a run of seven straight defeats.",
        "The opera house in {CITY} reopened in {IN} after a long restoration.",
        "A study by {INST} links ultra-processed food to poorer sleep.",
        "{PER} took gold in the 200 metres at the championships in {CITY}.",
        "Snowfall closed the main road through {PARK} {WHEN}, park rangers said.",
        "The {CITY} jazz festival returns on {ON} with more than forty free concerts.",
        "{PER} won the cooking competition with a twist on a classic {dish} from {COUNTRY}.",
        "Dr. {PER} from {INST} recommends at least seven hours of sleep a night for adults.",
        "More {weather} is likely in {CITY} {NEXT}, so maybe move the picnic indoors",
        "{SPORT} {sport_kind} {PER} is out for {num_word} weeks with a hamstring injury.",
        "Review: {PER}'s new album is moody, gorgeous and far too short",
        "Wildfire smoke from {REGION} drifted over {CITY}, worsening air quality.",
        "{FOOD} will cut sugar in its soft drinks sold in {AREA} by a fifth, the company said.",
        "The best {dish} I have ever eaten was at a tiny family restaurant in {CC}.",
        "“Cooking is about patience,” says {PER}, whose new cookbook comes out on {ON}.",
        "{PER} broke the national record in the 800 metres at a meet in {CITY} on {ON}.",
        "A magnitude 5.8 earthquake shook {REGION} {WHEN}; no injuries were reported.",
        "{SPORT} and {SPORT} drew 1-1 in a match played in pouring rain",
        "Nurses at hospitals across {COUNTRY} say staff shortages are getting worse, according to union leader {PER}.",
        "{PER} on why {CITY} has the best coffee culture in the world ☕",
        "Match day at last for {SPORT}",
        "{PER} and {PER} will host the new season of the cooking show, filmed in {CITY}.",
    ],
}

NO_ENTITY_FRAMES = {
    "travel": [
        "The hotel breakfast was {adj_good} but the rooms were {adj_bad}.",
        "Always keep a copy of your passport in a separate bag when you go on a {trip_kind}.",
        "Our flight was delayed by {num_word} hours, so we spent the night at the airport.",
        "We booked a {adj_room} room with a view of the harbour for {num_word} nights.",
        "Pack light, wear comfortable shoes and leave room in your suitcase for {num_word} souvenirs.",
        "The campsite had hot showers, clean toilets and a {adj_good} little café.",
        "Is travel insurance really worth it for a {num_word}-day trip?",
        "The train was {num_small} minutes late but the scenery made up for it.",
        "Best packing tip ever: roll your clothes instead of folding them 👍🏽",
        "Our guide made the whole {trip_kind} feel effortless.",
        "The {trip_kind} was {adj_good}, but book early because it sells out",
        "Hostel dorms are cheap, but a {adj_room} private room is worth it after a long flight.",
    ],
    "technology": [
        "The new {os_thing} update finally fixed the battery drain on my phone.",
        "Always back up your data before installing a major {os_thing} update.",
        "This {adj_tech} text editor loads in under a second and uses almost no memory.",
        "Machine learning models are only as good as the data they are trained on, and {tech_product} are no exception.",
        "The startup raised {money} to build {tech_product} for small businesses.",
        "Our app crashed for {num_word} hours after a bad database migration.",
        "Open-source software runs most of the internet, yet many maintainers of {tech_product} are unpaid.",
        "Is it worth upgrading to a phone with a {adj_tech} chip?",
        "Two-factor authentication stopped the attack before any of our {num} customer records were stolen.",
        "The {os_thing} update bricked {num} devices before it was pulled",
        "Engineers say {adj_tech} chips could halve the energy cost of training large models.",
        "Our startup spent {money} on cloud bills before anyone checked the dashboard.",
    ],
    "politics": [
        "The {policy} bill passed its second reading by a narrow margin.",
        "Parliament will vote on the {policy} reform after a long debate.",
        "The opposition called the {policy} plan reckless and unfunded.",
        "Voter turnout was {pct} percent higher than at the previous election.",
        "The coalition agreed to raise the minimum wage and cut {policy} spending.",
        "Ministers are under pressure to publish the full {policy} report.",
        "A cross-party committee will review the {policy} law.",
        "The prime minister reshuffled the cabinet after the {policy} scandal.",
        "Several lawmakers abstained in the final vote on the {policy} bill",
        "Critics say the new {policy} rules will make it harder for students to register.",
        "The senate rejected the {policy} amendment by {num_small} votes.",
        "Diplomats described the {policy} talks as frank but constructive.",
    ],
    "other": [
        "The soup was {adj_food} and the bread was still warm from the oven.",
        "The {weather} never stopped, so we stayed in and played board games.",
        "Drink plenty of water and avoid strenuous exercise when it is {temp} degrees outside.",
        "Their {sport_kind} missed {num_word} easy chances in the first half.",
        "This {adj_food} banana bread recipe uses only {num_word} ingredients.",
        "The concert was {adj_good}, even though the sound was a bit muddy.",
        "Stretching before a run can help prevent injuries, says every {sport_kind} I know.",
        "Heavy {weather} and icy roads made the commute slow and dangerous.",
        "My grandmother's {dish} recipe is still the best one I know",
        "Expect heavy {weather} and strong gusts along the coast.",
        "The home side won {score} thanks to a late penalty.",
        "A {adj_food} {dish} and a good book: perfect rainy evening 🙂",
    ],
}

# slot -> (entity type, source). Sources are lists or callables taking the RNG.
ENTITY_SLOTS = {
    "PER": ("PERSON", PERSONS),
    "CITY": ("LOC", CITY_NAMES),
    "COUNTRY": ("LOC", COUNTRIES),
    "REGION": ("LOC", REGIONS),
    "AREA": ("LOC", AREAS),
    "PARK": ("LOC", PARKS),
    "TECH": ("ORG", ORG_TECH),
    "CHIP": ("ORG", ORG_CHIPS),
    "TRAVEL": ("ORG", ORG_TRAVEL),
    "MEDIA": ("ORG", ORG_MEDIA),
    "INST": ("ORG", ORG_INST),
    "SPORT": ("ORG", ORG_SPORT),
    "RETAIL": ("ORG", ORG_RETAIL),
    "FOOD": ("ORG", ORG_FOOD),
    "GOVINTL": ("ORG", ORG_GOV_INTL),
    "GOVNAT": ("ORG", ORG_GOV_NAT),
    "BANK": ("ORG", ORG_BANKS),
    "PARTY": ("ORG", ORG_PARTIES),
    "ALLIANCE": ("ORG", ORG_ALLIANCES),
    "ON": ("DATE", date_on),
    "IN": ("DATE", date_in),
    "FUT": ("DATE", date_future),
    "MONTH": ("DATE", date_month),
    "YEAR": ("DATE", date_year),
    "WHEN": ("DATE", WHEN_PAST),
    "WHENC": ("DATE", [w[0].upper() + w[1:] for w in WHEN_PAST]),
    "NEXT": ("DATE", WHEN_NEXT),
}
HANDLES = ["devnotes", "cloudcutter", "ship_it_daily", "latency_nerd", "kernelpanic", "byte_sized"]
WORDS["handle"] = HANDLES

SLOT_RE = re.compile(r"\{([A-Za-z_]+)\}")


def normalise(sentence: str) -> str:
    """Same normalisation the validate stage uses for duplicate detection."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", sentence)).strip().casefold()


def fill(frame: str, rng: random.Random) -> tuple[str, list[dict]]:
    """Build a sentence from a frame; offsets are the length of the text built so far."""
    parts: list[str] = []
    length = 0
    spans: list[dict] = []
    used: set[str] = set()

    def emit(text: str, etype: str | None) -> None:
        nonlocal length
        if etype is not None:
            spans.append({"text": text, "type": etype, "start": length, "end": length + len(text)})
        parts.append(text)
        length += len(text)

    def draw(source) -> str:
        for _ in range(50):
            value = source(rng) if callable(source) else rng.choice(source)
            if value not in used:
                break
        used.add(value)
        return value

    pos = 0
    for m in SLOT_RE.finditer(frame):
        emit(frame[pos:m.start()], None)
        slot = m.group(1)
        if slot == "CC":  # adjacent "City, Country" -> two LOC spans
            for _ in range(50):
                city, country = rng.choice(CITIES)
                if city not in used and country not in used:
                    break
            used.update((city, country))
            emit(city, "LOC")
            emit(", ", None)
            emit(country, "LOC")
        elif slot in ENTITY_SLOTS:
            etype, source = ENTITY_SLOTS[slot]
            emit(draw(source), etype)
        else:
            emit(draw(WORDS[slot]), None)
        pos = m.end()
    emit(frame[pos:], None)
    return "".join(parts), spans


def generate(seed: int, per_topic: int, no_entity_share: float) -> list[dict]:
    rng = random.Random(seed)
    seen: set[str] = set()
    records: list[dict] = []
    for topic in TOPICS:
        n_plain = round(per_topic * no_entity_share)
        plan = _cycle(FRAMES[topic], per_topic - n_plain) + _cycle(NO_ENTITY_FRAMES[topic], n_plain)
        for frame in plan:
            for _ in range(40):  # retry fills until the sentence is new
                sentence, spans = fill(frame, rng)
                key = normalise(sentence)
                if key not in seen:
                    seen.add(key)
                    records.append({"sentence": sentence, "task_A": topic, "task_B": spans})
                    break
    rng.shuffle(records)
    return [{"id": f"corpus-{i:04d}", **rec} for i, rec in enumerate(records, 1)]


def _cycle(items: list[str], n: int) -> list[str]:
    return [items[i % len(items)] for i in range(n)]


# --------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------

def self_check(records: list[dict], strict: bool) -> dict:  # noqa: C901, PLR0912, PLR0915 - a flat list of independent invariant checks
    topics = Counter()
    types = Counter()
    features = Counter()
    ids = set()
    keys = set()
    pools = {
        "PERSON": set(PERSONS),
        "LOC": set(CITY_NAMES) | set(COUNTRIES) | set(REGIONS) | set(AREAS) | set(PARKS)
        | {s for _, s in CITIES},
        "ORG": set(ORG_TECH) | set(ORG_TRAVEL) | set(ORG_MEDIA) | set(ORG_INST) | set(ORG_SPORT)
        | set(ORG_RETAIL) | set(ORG_FOOD) | set(ORG_GOV_INTL) | set(ORG_GOV_NAT) | set(ORG_BANKS)
        | set(ORG_PARTIES) | set(ORG_ALLIANCES),
    }
    for rec in records:
        s = rec["sentence"]
        assert rec["id"] not in ids, rec["id"]
        ids.add(rec["id"])
        key = normalise(s)
        assert key not in keys, f"duplicate sentence: {s!r}"
        keys.add(key)
        assert s == s.strip() and s, repr(s)
        assert rec["task_A"] in TOPICS, rec
        topics[rec["task_A"]] += 1
        prev_end = 0
        for sp in rec["task_B"]:
            assert sp["type"] in ENTITY_TYPES, sp
            assert 0 <= sp["start"] < sp["end"] <= len(s), sp
            assert s[sp["start"]:sp["end"]] == sp["text"], (s, sp)
            assert sp["text"] == sp["text"].strip(), sp
            assert sp["start"] >= prev_end, f"overlap in {s!r}"
            prev_end = sp["end"]
            types[sp["type"]] += 1
            if not sp["text"].isascii():
                features["non-ASCII entity"] += 1
            if " " in sp["text"]:
                features["multi-token entity"] += 1
            if s[sp["end"]:sp["end"] + 2] == "'s":
                features["possessive"] += 1
        spans = rec["task_B"]
        if not spans:
            features["sentence without entities"] += 1
        else:
            if spans[0]["start"] == 0:
                features["entity at sentence start"] += 1
            if spans[-1]["end"] == len(s):
                features["entity at very end (no final punctuation)"] += 1
            elif s[spans[-1]["end"]:] in {".", "?", "!"}:
                features["entity then final punctuation"] += 1
            if any(b["start"] - a["end"] <= 2 for a, b in itertools.pairwise(spans)):
                features["adjacent entities (gap <= 2 chars)"] += 1
        if s[-1] not in ".?!":
            features["no final . ? !"] += 1
        if any(ord(ch) >= 0x2190 and not ch.isalpha() for ch in s):
            features["emoji/symbol"] += 1
        if any(q in s for q in "\"“”"):
            features["quotes"] += 1
    distinct = {t: len({sp["text"] for r in records for sp in r["task_B"] if sp["type"] == t})
                for t in ENTITY_TYPES}
    pool_sizes = {t: len(p) for t, p in pools.items()}
    if strict:
        assert len(records) >= 1000, len(records)
        for t in TOPICS:
            assert topics[t] >= 200, (t, topics[t])
        for t in ENTITY_TYPES:
            assert types[t] >= 350, (t, types[t])
        assert pool_sizes["PERSON"] >= 150 and pool_sizes["LOC"] >= 120 and pool_sizes["ORG"] >= 120
        for f in FRAMES.values():
            assert len(f) >= 40
        share = features["sentence without entities"] / len(records)
        assert 0.07 <= share <= 0.13, share
        for needed in ("non-ASCII entity", "multi-token entity", "possessive", "entity at sentence start",
                       "entity at very end (no final punctuation)", "entity then final punctuation",
                       "adjacent entities (gap <= 2 chars)", "emoji/symbol", "quotes"):
            assert features[needed] > 0, needed
    return {"records": len(records), "topics": {t: topics[t] for t in TOPICS},
            "entities": {t: types[t] for t in ENTITY_TYPES},
            "distinct_entity_texts": distinct, "pool_sizes": pool_sizes,
            "frames_per_topic": {t: len(FRAMES[t]) for t in TOPICS},
            "no_entity_frames_per_topic": {t: len(NO_ENTITY_FRAMES[t]) for t in TOPICS},
            "features": dict(sorted(features.items()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the sample annotated corpus (topic + NER) as JSONL.")
    ap.add_argument("--output", default="data/raw/corpus.jsonl", help="output file (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=13, help="random seed; same seed gives a byte-identical file (default: %(default)s)")
    ap.add_argument("--per-topic", type=int, default=300, help="sentences per topic before dedupe (default: %(default)s)")
    ap.add_argument("--no-entity-share", type=float, default=0.1,
                    help="share of sentences per topic drawn from entity-free frames (default: %(default)s)")
    ap.add_argument("--no-check", action="store_true", help="skip the acceptance asserts (counts are still printed)")
    args = ap.parse_args(argv)

    records = generate(args.seed, args.per_topic, args.no_entity_share)
    stats = self_check(records, strict=not args.no_check)

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)
    print(f"wrote {len(records)} records to {out}")
    print(json.dumps(stats, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
